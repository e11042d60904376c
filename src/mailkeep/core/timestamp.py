"""RFC 3161 time-stamps of signed tree heads: a time-stamping authority (the setting
`tree.tsa_url`) signs that the head existed at a time, so that a head cannot be made up later
even by whoever holds the archive's signing key. TimestampTreeHeads asks for a token for each
store's newest head that has none (run it as a job); the token (the authority's whole answer,
DER) is kept with the head in the master database and in the store (`tree.timestamps`, one JSON
object a line). `mailkeep heads timestamps --to DIR` writes each head's exact bytes and its
token, for `openssl ts -verify -data head-N.json -in head-N.tsr -CAfile <the TSA's CA>`.

What is stamped: SHA-256 of the head's canonical JSON with its signature (the line a store's
`tree.heads` holds, without its newline).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import tsp

from mailkeep.core.errors import MailkeepError


class TimestampFailed(MailkeepError):
    """The authority could not be reached, refused, or answered something else."""


@dataclass
class Token:
    answer: bytes  # the TimeStampResp, DER
    gen_time: datetime
    serial: int


def _checked(answer: bytes, digest: bytes, nonce: int | None) -> Token:
    try:
        resp = tsp.TimeStampResp.load(answer)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            said = resp["status"]["status_string"].native
            raise TimestampFailed(f"the time-stamping authority refused: {status}"
                                  + (f" ({'; '.join(said)[:200]})" if said else ""))
        info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        imprint = info["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].native != "sha256" \
                or imprint["hashed_message"].native != digest:
            raise TimestampFailed("the token stamps something else than the head")
        if nonce is not None and info["nonce"].native != nonce:
            raise TimestampFailed("the token answers another request (nonce)")
        return Token(answer, info["gen_time"].native, int(info["serial_number"].native))
    except TimestampFailed:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TimestampFailed(f"the answer is not an RFC 3161 time-stamp response "
                              f"({type(exc).__name__})") from None


@dataclass
class Query:
    """A time-stamp request for some data (its DER), and what its answer must match."""

    der: bytes
    digest: bytes
    nonce: int

    def answered(self, answer: bytes) -> Token:
        """The token of the authority's answer, checked against this request."""
        return _checked(answer, self.digest, self.nonce)


def query(data: bytes) -> Query:
    """The RFC 3161 request for `data` (sent by HTTP POST, section 3.4, by the caller)."""
    digest = hashlib.sha256(data).digest()
    nonce = secrets.randbits(63)
    req = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "nonce": nonce, "cert_req": True})
    return Query(req.dump(), digest, nonce)


def check(data: bytes, answer: bytes) -> Token:
    """The token of `answer` if it stamps `data` (its signature is the authority's to check:
    `openssl ts -verify` with the authority's CA)."""
    return _checked(answer, hashlib.sha256(data).digest(), None)
