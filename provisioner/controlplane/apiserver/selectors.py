"""Label and field selectors: the `?labelSelector=` / `?fieldSelector=` query syntax and the dict forms
stored in objects (`spec.selector` of Deployments and ReplicaSets, node affinity terms).

Pure values, safe to share between threads and tasks. The grammar, operators, key/value syntax and the
"a missing label matches `!=`/`notin`" rule follow k8s.io/apimachinery/pkg/labels and pkg/fields, so a
selector kubectl accepts behaves the same here. Bad syntax raises `ApiError` 400 BadRequest naming the
selector. Controllers and the scheduler reuse `Requirement` for node affinity (In, NotIn, Exists,
DoesNotExist, Gt, Lt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.controlplane.apiserver.status import ApiError

__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "label_selector_from_dict",
    "label_selector_from_map",
    "parse_field_selector",
    "parse_label_selector",
    "requirement_from_expression",
]

# Operators, spelled as in the string syntax (k8s selection.Operator values).
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

# Operators of the dict form: LabelSelectorRequirement allows the first four, NodeSelectorRequirement all six.
_SET_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
_NUMERIC_OPERATORS = {"Gt": GREATER_THAN, "Lt": LESS_THAN}

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(_NAME)
_INTEGER_RE = re.compile(r"-?[0-9]+")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _bad(kind: str, text: str, reason: str) -> ApiError:
    return ApiError(400, "BadRequest", f'invalid {kind} selector "{text}": {reason}')


def _key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key (`[prefix/]name`), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(prefix)):
        return f"key {key!r}: prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _NAME_RE.fullmatch(name):
        return (f"key {key!r}: name must be 1-63 characters of alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric")
    return None


def _value_problem(value: str) -> str | None:
    if value and (len(value) > 63 or not _NAME_RE.fullmatch(value)):
        return (f"value {value!r}: must be empty or 1-63 characters of alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric")
    return None


@dataclass(frozen=True)
class Requirement:
    """One term such as `app=web`, `tier in (a,b)`, `!canary` or `cpus>3`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def problem(self) -> str | None:
        """Why this requirement is malformed (operator arity, key and value syntax), or None."""
        if (key_error := _key_problem(self.key)) is not None:
            return key_error
        count = len(self.values)
        if self.operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and count != 1:
            return f"{self.key}: exactly one value required for '{self.operator}'"
        if self.operator in (IN, NOT_IN) and count == 0:
            return f"{self.key}: for 'in' and 'notin' the set of values cannot be empty"
        if self.operator in (EXISTS, DOES_NOT_EXIST) and count:
            return f"{self.key}: no values allowed for 'exists' and '!'"
        if self.operator in (GREATER_THAN, LESS_THAN):
            if count != 1 or not _INTEGER_RE.fullmatch(self.values[0]):
                return f"{self.key}: 'gt' and 'lt' need exactly one integer value"
            return None
        if self.operator not in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST):
            return f"{self.key}: unknown operator {self.operator!r}"
        return next(filter(None, map(_value_problem, self.values)), None)

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in (EQUALS, DOUBLE_EQUALS, IN):
            return present and value in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            return not present or value not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if value is None or not _INTEGER_RE.fullmatch(value):  # gt / lt: the label must hold an integer
            return False
        number, bound = int(value), int(self.values[0])
        return number > bound if self.operator == GREATER_THAN else number < bound

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must match (AND). `nothing` is the nil selector of Kubernetes: it matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        """Canonical string form (requirements sorted by key), as in a Scale's `status.selector`."""
        return ",".join(str(r) for r in self.requirements)


def _selector(requirements: list[Requirement], *, text: str) -> LabelSelector:
    for requirement in requirements:
        if (problem := requirement.problem()) is not None:
            raise _bad("label", text, problem)
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# --- the string syntax -------------------------------------------------------------------------------

_SPECIAL = "=!(),<>"
_TOKEN_RE = re.compile(r"\s*(==|!=|[=!(),<>]|[^\s=!(),<>]+)")


def _tokens(text: str) -> Iterator[str]:
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:  # only trailing whitespace is left
            return
        position = match.end()
        yield match.group(1)


class _LabelParser:
    """Recursive-descent parser of `key op value, ...` (the grammar of k8s labels.Parse)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_tokens(text))
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> str | None:
        token = self._peek()
        self.position += 1
        return token

    def _identifier(self, what: str) -> str:
        token = self._next()
        if token is None or token[0] in _SPECIAL:
            raise _bad("label", self.text, f"found {token or 'end of string'!r}, expected {what}")
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while self._peek() is not None:
            requirements.append(self._requirement())
            token = self._next()
            if token not in (None, ","):
                raise _bad("label", self.text, f"found {token!r}, expected ','")
            if token == "," and self._peek() is None:
                raise _bad("label", self.text, "expected a requirement after ','")
        return requirements

    def _requirement(self) -> Requirement:
        if self._peek() == "!":
            self._next()
            return Requirement(self._identifier("a key after '!'"), DOES_NOT_EXIST)
        key = self._identifier("a key")
        operator = self._peek()
        if operator in (None, ","):
            return Requirement(key, EXISTS)
        self._next()
        if operator in (IN, NOT_IN):
            return Requirement(key, operator, self._value_set())
        symbolic = {EQUALS: EQUALS, DOUBLE_EQUALS: DOUBLE_EQUALS, NOT_EQUALS: NOT_EQUALS,
                    ">": GREATER_THAN, "<": LESS_THAN}
        if operator not in symbolic:
            raise _bad("label", self.text, f"found {operator!r}, expected one of =, ==, !=, in, notin, >, <")
        value = self._peek()
        if value in (None, ","):  # `a=` selects the empty value
            return Requirement(key, symbolic[operator], ("",))
        return Requirement(key, symbolic[operator], (self._identifier("a value"),))

    def _value_set(self) -> tuple[str, ...]:
        if self._next() != "(":
            raise _bad("label", self.text, "expected '(' after 'in' or 'notin'")
        values: list[str] = []
        expect_value = True
        while (token := self._next()) != ")":
            if token is None:
                raise _bad("label", self.text, "missing ')'")
            if token == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif expect_value and token[0] not in _SPECIAL:
                values.append(token)
                expect_value = False
            else:
                raise _bad("label", self.text, f"found {token!r} in a value set")
        if expect_value and values:  # trailing comma: `in (a,)`
            values.append("")
        return tuple(values)


def parse_label_selector(text: str) -> LabelSelector:
    """Parse `?labelSelector=`; the empty string selects everything."""
    return _selector(_LabelParser(text).parse(), text=text)


# --- the dict forms ---------------------------------------------------------------------------------

def requirement_from_expression(expr: Mapping[str, Any], *, allow_numeric: bool = False) -> Requirement:
    """One `{key, operator, values}` of a matchExpressions list; `allow_numeric` admits Gt/Lt (node affinity)."""
    operators = {**_SET_OPERATORS, **(_NUMERIC_OPERATORS if allow_numeric else {})}
    if not isinstance(expr, Mapping):
        raise _bad("label", json.dumps(expr), "each match expression must be a map of key, operator and values")
    text = json.dumps(dict(expr), sort_keys=True)
    operator = operators.get(str(expr.get("operator")))
    if operator is None:
        raise _bad("label", text, f"operator must be one of {', '.join(operators)}")
    values = expr.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _bad("label", text, "values must be a list of strings")
    requirement = Requirement(str(expr.get("key", "")), operator, tuple(values))
    if (problem := requirement.problem()) is not None:
        raise _bad("label", text, problem)
    return requirement


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (`matchLabels` + `matchExpressions`): None selects nothing, `{}` everything."""
    if sel is None:
        return LabelSelector(nothing=True)
    text = json.dumps(dict(sel), sort_keys=True)
    match_labels = sel.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise _bad("label", text, "matchLabels must be a map")
    requirements = [Requirement(str(k), EQUALS, (str(v),)) for k, v in match_labels.items()]
    requirements += [requirement_from_expression(e) for e in sel.get("matchExpressions") or []]
    return _selector(requirements, text=text)


def label_selector_from_map(labels: Mapping[str, str]) -> LabelSelector:
    """A plain map selector (a Service's `spec.selector`, a pod's `nodeSelector`); empty selects everything."""
    requirements = [Requirement(str(k), EQUALS, (str(v),)) for k, v in labels.items()]
    return _selector(requirements, text=json.dumps(dict(labels), sort_keys=True))


# --- field selectors --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    """`path=value` or `path!=value`, where `path` is any dotted path into the object."""

    path: str
    operator: str  # EQUALS or NOT_EQUALS
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = _field_text(obj, self.path) == self.value
        return equal if self.operator == EQUALS else not equal


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    """The field's value as a selector compares it: missing is "", booleans are `true`/`false`."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, str):
        return current
    return json.dumps(current, sort_keys=True)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on `separator` where it is not escaped by a backslash (escapes are kept)."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str, selector: str) -> str:
    if re.search(r"\\(?![\\,=!])", text):
        raise _bad("field", selector, f"invalid escape sequence in {text!r} (only \\\\ \\, \\= \\! are allowed)")
    return re.sub(r"\\(.)", r"\1", text)


_FIELD_OPERATOR_RE = re.compile(r"(?<!\\)(!=|==|=)")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `?fieldSelector=` (`a.b=c,d!=e`, with `\\,` `\\=` escapes); the empty string selects everything."""
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(text, ",") if text.strip() else []:
        match = _FIELD_OPERATOR_RE.search(term)
        if match is None:
            raise _bad("field", text, f"can't understand {term!r}: expected path=value, path==value or path!=value")
        path = term[:match.start()].strip()
        if not path:
            raise _bad("field", text, f"missing field path in {term!r}")
        operator = NOT_EQUALS if match.group(1) == NOT_EQUALS else EQUALS
        requirements.append(FieldRequirement(path, operator, _unescape(term[match.end():].strip(), text)))
    return FieldSelector(tuple(requirements))
