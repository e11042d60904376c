"""Fixtures for the sending tests: certificates from a private CA, and one Dovecot per session."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from tests.sources.dovecot import Dovecot

from .peers import PASSWORD, USER, server_context


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def tls_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    return server_context(server_cert)


@pytest.fixture(scope="session")
def foreign_tls_context() -> ssl.SSLContext:
    """A certificate for 127.0.0.1 from a CA the client does not trust."""
    return server_context(trustme.CA().issue_cert("127.0.0.1", "localhost"))


@pytest.fixture(scope="session")
def dovecot(ca: trustme.CA) -> Iterator[Dovecot]:
    server = Dovecot(ca, {USER: PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.stop()
