"""How store changes become watch events for a watcher with selectors, as kube-apiserver decides them."""

from __future__ import annotations

import pytest

from provisioner.controlplane.apiserver.resources import by_kind
from provisioner.controlplane.apiserver.selectors import parse_field_selector, parse_label_selector
from provisioner.controlplane.apiserver.watch import WatchRequest, _translate
from provisioner.controlplane.store import WatchEvent

CONFIGMAP = by_kind("v1", "ConfigMap")


def _cm(**labels: str) -> dict:
    return {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n", "labels": labels}}


def _watch(labels: str = "", fields: str = "") -> WatchRequest:
    assert CONFIGMAP is not None
    return WatchRequest(rt=CONFIGMAP, namespace="n", resource_version="", bookmarks=False, render=None, timeout=None,
                        labels=parse_label_selector(labels) if labels else None,
                        fields=parse_field_selector(fields) if fields else None)


@pytest.mark.parametrize(("event", "expected"), [
    pytest.param(WatchEvent("PUT", 5, "k", _cm(app="a"), None), ("ADDED", "value"), id="created-matching"),
    pytest.param(WatchEvent("PUT", 5, "k", _cm(app="a"), _cm(app="a")), ("MODIFIED", "value"), id="still-matching"),
    pytest.param(WatchEvent("PUT", 5, "k", _cm(app="a"), _cm(app="b")), ("ADDED", "value"), id="starts-matching"),
    pytest.param(WatchEvent("PUT", 5, "k", _cm(app="b"), _cm(app="a")), ("DELETED", "prev"), id="stops-matching"),
    pytest.param(WatchEvent("PUT", 5, "k", _cm(app="b"), _cm(app="b")), None, id="never-matching"),
    pytest.param(WatchEvent("DELETE", 6, "k", None, _cm(app="a")), ("DELETED", "prev"), id="deleted-matching"),
    pytest.param(WatchEvent("DELETE", 6, "k", None, None), None, id="deleted-after-compaction"),
    pytest.param(WatchEvent("PROGRESS", 7), None, id="progress"),
])
def test_label_selected_watchers_see_objects_enter_and_leave(event: WatchEvent, expected: tuple | None) -> None:
    assert _translate(_watch(labels="app=a"), event) == expected


def test_field_selected_watchers_follow_one_object() -> None:
    w = _watch(fields="metadata.name=c")
    assert _translate(w, WatchEvent("PUT", 1, "k", _cm(), None)) == ("ADDED", "value")
    other = {"metadata": {"name": "d", "namespace": "n"}}
    assert _translate(w, WatchEvent("PUT", 2, "k2", other, None)) is None
