"""Authentication: peer-certificate subjects, the static token file (parsing, errors, reload), bearer headers."""

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from provisioner.controlplane.apiserver.authn import (
    Authenticator,
    TokenFileError,
    UserInfo,
    parse_token_file,
    user_from_peer_cert,
)

AUTH = "system:authenticated"


def _subject(*pairs: tuple[str, str]) -> dict[str, Any]:
    """A peer certificate as `SSLObject.getpeercert()` returns it: one RDN per attribute."""
    return {"subject": tuple(((key, value),) for key, value in pairs), "issuer": ((("commonName", "ca"),),)}


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        pytest.param(_subject(("commonName", "alice")), UserInfo("alice", (AUTH,)), id="cn-only"),
        pytest.param(_subject(("organizationName", "dev"), ("organizationName", "ops"), ("commonName", "bob")),
                     UserInfo("bob", ("dev", "ops", AUTH)), id="cn-and-organizations"),
        pytest.param(_subject(("organizationName", "system:masters"), ("commonName", "admin")),
                     UserInfo("admin", ("system:masters", AUTH)), id="admin"),
        pytest.param(_subject(("organizationName", AUTH), ("commonName", "eve")), UserInfo("eve", (AUTH,)),
                     id="authenticated-group-not-duplicated"),
        pytest.param(_subject(("organizationName", "dev")), None, id="no-common-name"),
        pytest.param({}, None, id="unverified-certificate"),
        pytest.param(None, None, id="no-certificate"),
    ],
)
def test_user_from_peer_cert(cert: dict[str, Any] | None, expected: UserInfo | None) -> None:
    assert user_from_peer_cert(cert) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("t1,alice,1001\n", {"t1": UserInfo("alice", (AUTH,), "1001")}, id="no-groups"),
        pytest.param('t1,alice,1001,"dev,ops"\n', {"t1": UserInfo("alice", ("dev", "ops", AUTH), "1001")},
                     id="quoted-groups"),
        pytest.param("t1,alice,1001,dev\n", {"t1": UserInfo("alice", ("dev", AUTH), "1001")}, id="one-group"),
        pytest.param("\n  \nt1, alice, ,\n\nt2,bob,2\n",
                     {"t1": UserInfo("alice", (AUTH,), ""), "t2": UserInfo("bob", (AUTH,), "2")},
                     id="blank-lines-spaces-empty-uid-and-groups"),
        pytest.param("", {}, id="empty-file"),
    ],
)
def test_parse_token_file(text: str, expected: dict[str, UserInfo]) -> None:
    assert parse_token_file(text, source="tokens.csv") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("t1,alice,1\nt2,bob\n",
                     "tokens.csv line 2: expected at least 3 columns (token, user, uid), found 2",
                     id="too-few-columns"),
        pytest.param("justatoken\n", "tokens.csv line 1: expected at least 3 columns", id="one-column"),
        pytest.param(",alice,1\n", "tokens.csv line 1: the token column is empty", id="empty-token"),
        pytest.param("t1, ,1\n", "tokens.csv line 1: the user column is empty", id="empty-user"),
        pytest.param("t1,alice,1\n\nt1,bob,2\n", "tokens.csv line 3: this token already appears", id="duplicate"),
    ],
)
def test_malformed_token_file_names_the_line(text: str, message: str) -> None:
    with pytest.raises(TokenFileError) as caught:
        parse_token_file(text, source="tokens.csv")
    assert message in caught.value.message
    assert caught.value.hint


def _write(path: Path, text: str, *, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime, mtime))


def test_token_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    _write(tokens, "t1,alice,1\n", mtime=1_000_000_000)
    authn = Authenticator(token_file=tokens)
    assert authn.authenticate_token("t1") == UserInfo("alice", (AUTH,), "1")
    assert authn.authenticate_token("t2") is None

    _write(tokens, 't2,bob,2,"dev"\n', mtime=2_000_000_000)
    assert authn.authenticate_token("t1") is None
    assert authn.authenticate_token("t2") == UserInfo("bob", ("dev", AUTH), "2")


def test_malformed_reload_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    _write(tokens, "t1,alice,1\n", mtime=1_000_000_000)
    authn = Authenticator(token_file=tokens)
    _write(tokens, "t1,alice\n", mtime=2_000_000_000)
    assert authn.authenticate_token("t1") == UserInfo("alice", (AUTH,), "1")
    tokens.unlink()
    assert authn.authenticate_token("t1") == UserInfo("alice", (AUTH,), "1")


def test_malformed_token_file_refuses_to_start(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("t1,alice,1\nbroken\n")
    with pytest.raises(TokenFileError, match="line 2"):
        Authenticator(token_file=tokens)


def test_missing_token_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        Authenticator(token_file=tmp_path / "absent.csv")


class _PlainTransport:
    """A connection without TLS: no peer certificate to offer."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("Bearer t1", UserInfo("alice", ("dev", AUTH), "1"), id="bearer"),
        pytest.param("bearer   t1 ", UserInfo("alice", ("dev", AUTH), "1"), id="scheme-case-and-spaces"),
        pytest.param("Bearer nope", None, id="unknown-token"),
        pytest.param("Bearer ", None, id="empty-token"),
        pytest.param("Basic dDE6", None, id="other-scheme"),
        pytest.param(None, None, id="no-header"),
    ],
)
def test_authenticate_request_by_bearer_token(tmp_path: Path, header: str | None, expected: UserInfo | None) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("t1,alice,1,dev\n")
    headers = {"Authorization": header} if header is not None else {}
    request = make_mocked_request("GET", "/api", headers=headers, transport=_PlainTransport())
    assert Authenticator(token_file=tokens).authenticate(request) == expected


def test_without_token_file_bearer_tokens_authenticate_nobody() -> None:
    request = make_mocked_request("GET", "/api", headers={"Authorization": "Bearer t1"}, transport=_PlainTransport())
    assert Authenticator(token_file=None).authenticate(request) is None
