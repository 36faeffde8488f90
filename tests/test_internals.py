"""Every private or undocumented library name Heimdall relies on is still there, with the
signature it had on the pinned versions; and only the broker room uses such names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from heimdall.broker.internals import PRIVATE_NAMES, PrivateName

PACKAGE = Path(__file__).resolve().parents[1] / "heimdall"
LIBRARIES = ("celery", "kombu", "billiard", "redis")


@pytest.mark.parametrize("name", PRIVATE_NAMES, ids=lambda n: n.qualified)
def test_private_name_is_as_pinned(name: PrivateName):
    assert name.problem() is None, name.problem()


def test_a_changed_signature_is_reported_by_name():
    changed = PrivateName("kombu.transport.redis:Channel", "_brpop_start", "method",
                          "(self)", "here", "a test")  # fmt: skip
    gone = PrivateName("kombu.transport.redis:Channel", "_no_such", "method", "(self)", "", "")
    assert "kombu.transport.redis:Channel._brpop_start changed" in changed.problem()
    assert gone.problem() == "kombu.transport.redis:Channel._no_such is gone"


def _private_library_names(path: Path) -> set[str]:
    """``library.module._name`` imports and ``._name`` attributes of library objects in a file:
    imports of private modules or names, and attributes starting with one underscore read off
    anything but ``self``/``cls``/``super()`` of our own classes."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            parts = [*(node.module or "").split("."), *(a.name for a in node.names)]
            found |= {f"{node.module}:{p}" for p in parts if p.startswith("_")}
    return found


def test_only_the_broker_room_imports_private_library_names():
    outside = {
        str(p.relative_to(PACKAGE)): names
        for p in PACKAGE.rglob("*.py")
        if "broker" not in p.parts and (names := _private_library_names(p))
    }
    assert outside == {}


def test_every_private_attribute_used_in_the_broker_room_is_listed():
    listed = {n.name for n in PRIVATE_NAMES}
    used = set()
    for path in (PACKAGE / "broker").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                used.add(node.attr)
    ours = {"_key", "_polled", "_waiting", "_claim_id", "_message_claims", "_event_flush_due",
            "_flush_buffered_events", "_release_claim", "_publish_failure", "_publish_refusal",
            "_find", "_encode"}  # fmt: skip
    assert sorted(used - ours - listed) == []


def test_listed_names_are_touched_only_in_the_broker_room():
    listed = {n.name for n in PRIVATE_NAMES if n.name.startswith("_") and n.name != "__init__"}
    outside = {}
    for path in PACKAGE.rglob("*.py"):
        if "broker" in path.parts:
            continue
        attrs = {
            node.attr
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute) and node.attr in listed
        }
        if attrs:
            outside[str(path.relative_to(PACKAGE))] = sorted(attrs)
    assert outside == {}
