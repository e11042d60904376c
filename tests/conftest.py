"""Checks and fixtures for the whole suite.

- The shared test data (the mail corpus and the function spec, in ../shared beside the
  checkout) must be there: without it the run stops at once, with one message saying where it
  was looked for, rather than skipping the tests that need it.
- No MAILKEEP_* variable of the environment the tests were started in reaches a test.
- Property-based tests (hypothesis) draw the same examples on every run, so that a run's
  outcome depends on the code alone; `FUZZ_RANDOM=1 make test` draws new ones each time.
- Fixtures: a data directory path, a real `mailkeep serve`, a master database with its users
  (a cheap password hasher), and a private Dovecot per test module with a user (and an IMAP
  connection as that user) per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from imapclient import IMAPClient

from mailkeep.core.admin.users import Users
from mailkeep.core.masterdb import MasterDB
from tests.apiclient import CHEAP
from tests.helpers import CORPUS, NEEDED, ROOT, free_port, mk_ok, serving
from tests.peers.postgres import Postgres
from tests.sources.dovecot import Dovecot

settings.register_profile("mailkeep", derandomize=os.environ.get("FUZZ_RANDOM") != "1",
                          database=None)
settings.load_profile("mailkeep")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENGINE != "postgresql":
        return
    for item in items:
        if item.get_closest_marker("sqlite_master"):
            item.add_marker(pytest.mark.skip(reason="about the master database's SQLite file; "
                                                    "MAILKEEP_TEST_ENGINE=postgresql"))
        if item.get_closest_marker("sqlite_catalog"):
            item.add_marker(pytest.mark.skip(reason="about a store's SQLite catalog; "
                                                    "MAILKEEP_TEST_ENGINE=postgresql"))


def pytest_configure(config: pytest.Config) -> None:
    missing = [CORPUS] if not CORPUS.is_dir() else [p for p in NEEDED if not p.exists()]
    if missing:
        where = ", ".join(f"{os.path.relpath(p, ROOT)} ({p})" for p in missing)
        raise pytest.UsageError(
            f"the shared test data is missing: {where}. The tests need the test mail corpus "
            "at ../shared/corpus and the function spec at ../shared/spec, beside the checkout.")


# MAILKEEP_TEST_ENGINE=postgresql runs every test with its master database and catalogs in
# PostgreSQL (a database of its own on the run's server; one for the whole module where the
# module says SHARED_DATABASE = True, for its module-scoped archives): `make test` runs the
# suite on the embedded default, and the tests of tests/scale/ on PostgreSQL; this runs all
# of them there.
ENGINE = os.environ.get("MAILKEEP_TEST_ENGINE", "sqlite")


@pytest.fixture(scope="module", autouse=True)
def _module_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """With MAILKEEP_TEST_ENGINE=postgresql, in a module that shares one database: that
    database, for its module-scoped fixtures too (set before them)."""
    if ENGINE != "postgresql" or not getattr(request.module, "SHARED_DATABASE", False):
        yield
        return
    server = request.getfixturevalue("postgres_server")
    url = server.new_database()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAILKEEP_DATABASE", url)
        yield
    server.drop_database(url)


@pytest.fixture
def own_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MAILKEEP_TEST_ENGINE=postgresql, in a module that shares one database: a database
    of this test's own (for an archive of its own)."""
    if ENGINE == "postgresql":
        monkeypatch.setenv("MAILKEEP_DATABASE", request.getfixturevalue("pg_url"))


@pytest.fixture(autouse=True)
def _no_mailkeep_environment(request: pytest.FixtureRequest,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the environment the tests were started in (MAILKEEP_DATA,
    MAILKEEP_MASTER_KEY, MAILKEEP_PASSWORD, ...) reaches a test."""
    shared = os.environ.get("MAILKEEP_DATABASE") if getattr(
        request.module, "SHARED_DATABASE", False) else None
    for name in [k for k in os.environ if k.startswith("MAILKEEP_")]:
        monkeypatch.delenv(name)
    if ENGINE == "postgresql":
        monkeypatch.setenv("MAILKEEP_DATABASE", shared or request.getfixturevalue("pg_url"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Where a test's data directory goes (not created)."""
    return tmp_path / "data"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real `mailkeep serve` (TLS, the Administration API on) on a free port of 127.0.0.1,
    for a data directory of 30 small messages: (its base URL, the data directory)."""
    data, mail = tmp_path / "data", tmp_path / "mail"
    mail.mkdir()
    for i in range(30):
        (mail / f"{i}.eml").write_bytes(f"Subject: s{i}\r\n\r\nbody {i}\r\n".encode())
    mk_ok(data, "import", str(mail))
    port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port):
        yield f"https://127.0.0.1:{port}", data


# -- a private PostgreSQL ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL server for the whole run (tests/peers/postgres.py)."""
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: Postgres) -> Iterator[str]:
    """A new empty PostgreSQL database of this test's own: its URL."""
    url = postgres_server.new_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def master(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MasterDB]:
    """A new master database, in each engine: the data directory's SQLite file, and a
    PostgreSQL database."""
    if request.param == "sqlite":
        m = MasterDB(tmp_path / "mailkeep.db")
    else:
        m = MasterDB(tmp_path / "mailkeep.db", url=request.getfixturevalue("pg_url"))
    yield m
    m.close()


@pytest.fixture
def users(master: MasterDB) -> Users:
    """The users of `master`, with a cheap password hasher; none created yet."""
    return Users(master, hasher=CHEAP)


# -- a private Dovecot ----------------------------------------------------------------------
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
    """A Dovecot user of this test's own, with an empty mailbox."""
    return dovecot.new_user()


@pytest.fixture
def admin(dovecot: Dovecot, user: str) -> Iterator[IMAPClient]:
    """A plain IMAP connection as `user`, to fill and change the mailbox."""
    client = dovecot.admin(user)
    try:
        yield client
    finally:
        client.logout()
