"""Label and field selectors: the query-string grammar, the dict forms, and what they match."""

import pytest

from provisioner.controlplane.apiserver.selectors import (
    label_selector_from_dict,
    label_selector_from_map,
    parse_field_selector,
    parse_label_selector,
    requirement_from_expression,
)
from provisioner.controlplane.apiserver.status import ApiError

WEB = {"app": "web", "tier": "front", "cpus": "8"}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param("", {}, True, id="empty-selects-everything"),
        pytest.param("app=web", WEB, True, id="equals"),
        pytest.param("app==web", WEB, True, id="double-equals"),
        pytest.param("app=db", WEB, False, id="equals-other-value"),
        pytest.param("app!=db", WEB, True, id="not-equals"),
        pytest.param("env!=prod", WEB, True, id="not-equals-matches-missing-label"),
        pytest.param("app=web,tier=back", WEB, False, id="comma-is-and"),
        pytest.param("tier in (front,back)", WEB, True, id="in"),
        pytest.param("tier in (back)", WEB, False, id="in-other-values"),
        pytest.param("env in (prod)", WEB, False, id="in-needs-the-label"),
        pytest.param("tier notin (back)", WEB, True, id="notin"),
        pytest.param("env notin (prod)", WEB, True, id="notin-matches-missing-label"),
        pytest.param("tier notin (front)", WEB, False, id="notin-excludes"),
        pytest.param("app", WEB, True, id="exists"),
        pytest.param("env", WEB, False, id="exists-missing"),
        pytest.param("!env", WEB, True, id="does-not-exist"),
        pytest.param("!app", WEB, False, id="does-not-exist-present"),
        pytest.param("cpus>4", WEB, True, id="greater-than"),
        pytest.param("cpus<4", WEB, False, id="less-than"),
        pytest.param("app>4", WEB, False, id="greater-than-non-integer-label"),
        pytest.param("app=", {"app": ""}, True, id="empty-value"),
        pytest.param("  app = web ,  tier in ( front , back ) , ! env ", WEB, True, id="whitespace-tolerant"),
        pytest.param("example.com/role=db", {"example.com/role": "db"}, True, id="prefixed-key"),
        pytest.param("tier in (a,)", {"tier": ""}, True, id="trailing-comma-in-set-is-empty-value"),
    ],
)
def test_label_selector_string_matches(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("tier in (b,a),app=web", "app=web,tier in (a,b)", id="sorted-by-key-and-value"),
        pytest.param("!a, b ,c!=d", "!a,b,c!=d", id="exists-forms"),
        pytest.param("n > 3", "n>3", id="greater-than"),
    ],
)
def test_label_selector_renders_canonical_string(text, canonical):
    assert str(parse_label_selector(text)) == canonical
    assert str(parse_label_selector(canonical)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a=b=c", "found '=', expected ','", id="double-operator"),
        pytest.param("a in x", "expected '('", id="set-without-parentheses"),
        pytest.param("a in (x", "missing ')'", id="unclosed-set"),
        pytest.param("a in ()", "cannot be empty", id="empty-set"),
        pytest.param("=b", "expected a key", id="missing-key"),
        pytest.param("a,", "expected a requirement after ','", id="trailing-comma"),
        pytest.param(",a", "expected a key", id="leading-comma"),
        pytest.param("!", "expected a key after '!'", id="bare-bang"),
        pytest.param("a b", "expected one of =, ==, !=, in, notin, >, <", id="missing-operator"),
        pytest.param("n>x", "integer", id="non-integer-bound"),
        pytest.param("-a=b", "key '-a'", id="key-starts-with-dash"),
        pytest.param("Bad_/b=c", "prefix must be a DNS subdomain", id="bad-prefix"),
        pytest.param("a=-x", "value '-x'", id="bad-value"),
        pytest.param("a=" + "x" * 64, "1-63 characters", id="value-too-long"),
    ],
)
def test_bad_label_selector_is_a_bad_request_naming_it(text, message):
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert f'"{text}"' in caught.value.message and message in caught.value.message


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param({}, {}, True, id="empty-selects-everything"),
        pytest.param(None, WEB, False, id="none-selects-nothing"),
        pytest.param({"matchLabels": {"app": "web"}}, WEB, True, id="match-labels"),
        pytest.param({"matchLabels": {"app": "web", "tier": "back"}}, WEB, False, id="match-labels-all-must-match"),
        pytest.param(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
            },
            WEB,
            True,
            id="labels-and-expressions",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, WEB, False, id="not-in"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, WEB, True, id="does-not-exist"
        ),
        pytest.param({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, WEB, True, id="exists"),
    ],
)
def test_label_selector_dict_matches(selector, labels, expected):
    assert label_selector_from_dict(selector).matches(labels) is expected


def test_label_selector_dict_renders_as_scale_status_selector():
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]}],
    }
    assert str(label_selector_from_dict(selector)) == "app=web,env in (a,b)"


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, id="gt-not-allowed"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, id="in-without-values"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, id="exists-with-values"
        ),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}, id="values-not-a-list"),
        pytest.param({"matchExpressions": ["a"]}, id="expression-not-a-map"),
        pytest.param({"matchLabels": {"a": "-x"}}, id="bad-label-value"),
        pytest.param({"matchLabels": ["a"]}, id="match-labels-not-a-map"),
    ],
)
def test_bad_label_selector_dict_is_a_bad_request(selector):
    with pytest.raises(ApiError) as caught:
        label_selector_from_dict(selector)
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        pytest.param({"key": "cpus", "operator": "Gt", "values": ["4"]}, WEB, True, id="gt"),
        pytest.param({"key": "cpus", "operator": "Lt", "values": ["4"]}, WEB, False, id="lt"),
        pytest.param({"key": "gpus", "operator": "Gt", "values": ["0"]}, WEB, False, id="gt-missing-label"),
        pytest.param({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"zone": "b"}, True, id="in"),
    ],
)
def test_node_selector_requirements_allow_numeric_operators(expr, labels, expected):
    assert requirement_from_expression(expr, allow_numeric=True).matches(labels) is expected


def test_map_selector_matches_like_a_service_selector():
    assert label_selector_from_map({"app": "web"}).matches(WEB)
    assert not label_selector_from_map({"app": "web", "tier": "back"}).matches(WEB)
    assert label_selector_from_map({}).matches({})


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "hostNetwork": False, "priority": 5},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", True, id="empty-selects-everything"),
        pytest.param("metadata.name=web-1", True, id="name"),
        pytest.param("metadata.name==web-1", True, id="double-equals"),
        pytest.param("metadata.namespace!=kube-system", True, id="namespace-not-equals"),
        pytest.param("status.phase=Running,spec.nodeName=n1", True, id="comma-is-and"),
        pytest.param("status.phase=Running,spec.nodeName=n2", False, id="comma-is-and-failing"),
        pytest.param("spec.nodeName=", False, id="empty-value-means-unset"),
        pytest.param("spec.schedulerName=", True, id="missing-field-is-empty"),
        pytest.param("spec.hostNetwork=false", True, id="boolean"),
        pytest.param("spec.priority=5", True, id="integer"),
        pytest.param(" status.phase = Running ", True, id="whitespace-tolerant"),
    ],
)
def test_field_selector_matches(text, expected):
    assert parse_field_selector(text).matches(POD) is expected


def test_field_selector_value_escapes():
    selector = parse_field_selector(r"metadata.name=a\,b\=c,status.phase=x")
    assert selector.matches({"metadata": {"name": "a,b=c"}, "status": {"phase": "x"}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("metadata.name", "expected path=value", id="no-operator"),
        pytest.param("=x", "missing field path", id="missing-path"),
        pytest.param(r"metadata.name=\q", "invalid escape sequence", id="bad-escape"),
    ],
)
def test_bad_field_selector_is_a_bad_request_naming_it(text, message):
    with pytest.raises(ApiError) as caught:
        parse_field_selector(text)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert f'"{text}"' in caught.value.message and message in caught.value.message
