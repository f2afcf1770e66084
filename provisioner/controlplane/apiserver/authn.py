"""Who is asking: x509 client certificates and static bearer tokens, as kube-apiserver does it.

The TLS layer (ssl.CERT_OPTIONAL with the cluster CA) has already verified any client certificate
before a request reaches us, so its subject can be trusted as is: CN is the user, each O a group.
Bearer tokens come from a static token file in kube-apiserver's CSV format, re-read when the file
changes so operators can add users without a restart. Everything here is synchronous and cheap
(one dict lookup and one stat() per token request); it runs on the event loop.
"""

from __future__ import annotations

import csv
import logging
import os
import ssl
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from provisioner.errors import ProvisionerError

__all__ = ["AUTHENTICATED_GROUP", "Authenticator", "TokenFileError", "UserInfo", "parse_token_file",
           "user_from_peer_cert"]

log = logging.getLogger(__name__)

AUTHENTICATED_GROUP = "system:authenticated"

_TOKEN_FORMAT_HINT = 'each line reads token,user,uid[,"group1,group2"] (kube-apiserver static token file format)'


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity; RBAC subjects of kind User match `name`, kind Group match `groups`."""

    name: str
    groups: tuple[str, ...]
    uid: str = ""


class TokenFileError(ProvisionerError):
    """The token file cannot be used; the message names the file and the offending line."""


def _authenticated(name: str, groups: Iterable[str], uid: str = "") -> UserInfo:
    """Every authenticated user is also in `system:authenticated` (once, last, like Kubernetes)."""
    unique = tuple(dict.fromkeys(g for g in groups if g != AUTHENTICATED_GROUP))
    return UserInfo(name=name, groups=(*unique, AUTHENTICATED_GROUP), uid=uid)


def user_from_peer_cert(cert: dict[str, Any] | None) -> UserInfo | None:
    """The user named by a verified peer certificate as `ssl.SSLObject.getpeercert()` parses it.

    `None` or `{}` (no certificate, or one the TLS layer did not verify) and a certificate without a
    common name authenticate nobody.
    """
    if not cert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    return _authenticated(name, groups) if name else None


def parse_token_file(text: str, *, source: str) -> dict[str, UserInfo]:
    """Tokens of a static token file, keyed by token; any malformed line is an error naming it.

    Blank lines are skipped; a line needs at least token, user and uid; the optional fourth column
    is a comma-separated group list (quoted in CSV). A token may appear only once.
    """
    users: dict[str, UserInfo] = {}
    for number, row in enumerate(csv.reader(text.splitlines(), skipinitialspace=True), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{source} line {number}"
        if len(row) < 3:
            raise TokenFileError(f"{where}: expected at least 3 columns (token, user, uid), found {len(row)}",
                                 hint=_TOKEN_FORMAT_HINT)
        token, name, uid = (cell.strip() for cell in row[:3])
        if not token:
            raise TokenFileError(f"{where}: the token column is empty", hint=_TOKEN_FORMAT_HINT)
        if not name:
            raise TokenFileError(f"{where}: the user column is empty", hint=_TOKEN_FORMAT_HINT)
        if token in users:
            raise TokenFileError(f"{where}: this token already appears on an earlier line",
                                 hint="give every user its own token")
        groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
        users[token] = _authenticated(name, groups, uid)
    return users


class _TokenFile:
    """A token file's tokens, re-read whenever its mtime, size or inode changes.

    A file that turns malformed after start keeps the last good tokens (logged), so a typo in an
    edit does not lock every token user out.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = self._stat()
        self._users = parse_token_file(path.read_text(), source=str(path))

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self._path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def lookup(self, token: str) -> UserInfo | None:
        try:
            stamp = self._stat()
        except OSError as e:
            log.error("token file %s unreadable, keeping %d known tokens: %s", self._path, len(self._users), e)
            stamp = self._stamp
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._users = parse_token_file(self._path.read_text(), source=str(self._path))
                log.info("token file %s reloaded: %d tokens", self._path, len(self._users))
            except (OSError, TokenFileError) as e:
                log.error("token file %s not reloaded, keeping %d known tokens: %s", self._path,
                          len(self._users), e)
        return self._users.get(token)


def _bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" when absent or another scheme)."""
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Authenticator:
    """Authenticates requests: a verified client certificate first, then a bearer token.

    Raises `TokenFileError` at construction when the token file is malformed, so a server never
    starts with half its users missing.
    """

    def __init__(self, *, token_file: Path | None) -> None:
        if token_file is not None and not token_file.is_file():
            raise TokenFileError(f"token file {token_file} does not exist",
                                 hint="create it or remove token_file from the API server config")
        self._tokens = _TokenFile(token_file) if token_file is not None else None
        # A TLS connection's peer certificate never changes: parse it once per connection, not per request.
        self._cert_users: weakref.WeakKeyDictionary[ssl.SSLObject, UserInfo | None] = weakref.WeakKeyDictionary()

    def authenticate(self, request: web.Request) -> UserInfo | None:
        """The request's user, or None when it carries no valid credentials (answer 401)."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        user = None
        if ssl_object is not None:
            try:
                user = self._cert_users[ssl_object]
            except KeyError:
                user = self._cert_users[ssl_object] = user_from_peer_cert(ssl_object.getpeercert())
        if user is not None:
            return user
        return self.authenticate_token(_bearer_token(request.headers.get("Authorization")))

    def authenticate_token(self, token: str) -> UserInfo | None:
        """The user a bearer token belongs to, or None for an empty or unknown token."""
        if not token or self._tokens is None:
            return None
        return self._tokens.lookup(token)
