"""Fixtures of the IMAP and POP3 source tests: a private Dovecot per test module, a fresh
mailbox per test, and a plain IMAP connection to fill it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from tests.sources.dovecot import Dovecot


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.new_user()


@pytest.fixture
def admin(dovecot: Dovecot, user: str) -> Iterator[IMAPClient]:
    client = dovecot.admin(user)
    try:
        yield client
    finally:
        client.logout()
