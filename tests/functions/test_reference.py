"""The checked-in function reference is what the catalog says now."""

from __future__ import annotations

from pathlib import Path

from mailkeep.functions.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "functions.md"


def test_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/functions.md is stale: run `make docs`")
