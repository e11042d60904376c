"""What the tests of an installation beyond one machine share: one SeaweedFS for the run
(tests/peers/seaweed.py), a bucket of its own for each test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.peers.seaweed import Seaweed

_buckets = itertools.count()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    server = Seaweed().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scaled(seaweed: Seaweed, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installation on PostgreSQL and the object store (a bucket of this test's own), in
    this process's environment (and so in every command and server the test starts): the
    objects URL."""
    url = seaweed.new_bucket(f"mk-{next(_buckets)}")
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAILKEEP_DATABASE", pg_url)
    monkeypatch.setenv("MAILKEEP_OBJECTS", url)
    return url
