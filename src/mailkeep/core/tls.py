"""TLS contexts for mailkeep as a client (of IMAP, POP3 and SMTP servers).

A private CA file (`caFile`) is trusted besides the system's CAs. Whatever keeps it from being
used (missing, unreadable, a directory, not PEM) gets one and the same answer, so that whoever
may set a caFile cannot use it to learn whether some file exists or what it holds; the server's
log says which it was.
"""

from __future__ import annotations

import logging
import ssl

from mailkeep.core.errors import InvalidArgument

log = logging.getLogger(__name__)


def ca_file_unusable(ca_file: str) -> InvalidArgument:
    return InvalidArgument(f"caFile {ca_file} cannot be used: it must be a readable file of "
                           "PEM certificates.")


def client_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """Certificates checked against the system's CAs and ca_file's (verify), or not at all."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("caFile %s cannot be used: %s", ca_file, exc)
            raise ca_file_unusable(ca_file) from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_ca_file(ca_file: str | None) -> None:
    """Refuse a caFile that client_context could not use (when it is set, not when used)."""
    if ca_file is not None:
        client_context(True, ca_file)
