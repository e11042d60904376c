"""Fixtures of the directory services tests: one private slapd per test module, handed to each
test with the tree as loaded (a test's changes are undone before the next test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.directory.slapd import Slapd


@pytest.fixture(scope="module")
def slapd_server() -> Iterator[Slapd]:
    """The module's slapd, as the tests left it (for module-scoped fixtures)."""
    with Slapd() as server:
        yield server


@pytest.fixture
def slapd(slapd_server: Slapd) -> Slapd:
    """The module's slapd with the tree as loaded: what an earlier test changed is undone."""
    slapd_server.reset()
    return slapd_server
