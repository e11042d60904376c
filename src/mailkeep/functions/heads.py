"""Tamper evidence (mailkeep extension): the signed heads of the stores' Merkle trees, proofs
that a message is in a store or that a store's history was only appended to, and the export
of the heads to somewhere the archive's administrator does not control (core/heads.py,
core/proof.py)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

from mailkeep.core import timestamp
from mailkeep.core.admin.places import checked_place, roots_of
from mailkeep.core.admin.settings import Settings
from mailkeep.core.admin.users import ROLES
from mailkeep.core.errors import InvalidArgument, MailkeepError
from mailkeep.core.fields import Field
from mailkeep.core.files import write_new
from mailkeep.core.heads import public_text
from mailkeep.core.proof import consistency_proof, message_proof
from mailkeep.core.storage.tree import TIMESTAMPS_FILE, canonical
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function

TSA_TIMEOUT_S = 15.0
TSA_MAX_ANSWER = 64 << 10  # a time-stamp response is a few KB
STORE = Field("storeId", "number", nullable=True, description="Only this store's heads "
              "(see GetStores); default: every store's.")
SINCE = Field("since", "number", nullable=True, low=0, high=1 << 40,
              description="Only heads signed at or after this time (epoch seconds).")
HEAD_SHAPE = ('{"v": 1, "store": str, "size": int, "root": str, "at": int, "key": str, '
              '"sig": str}')


def _heads(call: Call) -> list[dict[str, Any]]:
    since = int(call.arg("since") or 0)
    stamps: dict[tuple[str, int, str], str] = {}
    if call.arg("withTimestamps"):
        for signed, tst in call.master.heads.timestamps():
            h = json.loads(signed)
            stamps[(h["store"], h["size"], h["root"])] = tst
    if call.arg("storeId") is not None:
        rec = call.archive.find_store(int(call.arg("storeId")))
        uuid = call.archive.open_store(rec, write=False, check_state=False).id
        texts = call.master.heads.of_store(uuid, since)
    else:
        texts = call.master.heads.all(since)
    out = [json.loads(t) for t in texts]
    for h in out:
        stamp = stamps.get((h["store"], h["size"], h["root"]))
        if stamp is not None:
            h["tsr"] = stamp
    return out


def export_lines(call: Call) -> tuple[str, int]:
    """The heads as JSON lines, after a first line naming the public key; and how many."""
    heads = _heads(call)
    lines = [json.dumps({"publicKey": public_text(call.archive.signing_key.public())})]
    lines += [json.dumps(h, sort_keys=True) for h in heads]
    return "\n".join(lines) + "\n", len(heads)


@function("GetTreeHeads", "mailkeep extension: the signed heads of the stores' Merkle trees "
          "(every record a store writes is a leaf; a head signs the tree's size and root), "
          "oldest first, and the public key that checks them (ed25519:<base64>). Kept "
          "elsewhere, they let anyone detect a rewritten history: `mailkeep verify --heads`.",
          f'{{"publicKey": str, "heads": [{HEAD_SHAPE}]}}', STORE, SINCE,
          Field("withTimestamps", "bool", required=False, default=False,
                description="Add tsr (the RFC 3161 time-stamp response, base64) to the heads "
                "that have one."), changes=False, roles=ROLES)
def get_tree_heads(call: Call) -> dict[str, Any]:
    return {"publicKey": public_text(call.archive.signing_key.public()), "heads": _heads(call)}


@function("GetMessageProof", "mailkeep extension: the proof that a message is in its store as "
          "archived: the newest signed tree head, and the leaves of the message's record and "
          "of its filing with their inclusion paths (RFC 9162). Saved as proof.json beside the "
          "message's exact bytes as message.eml, `mailkeep verify-proof DIR --key KEY` checks "
          "it offline. The answer holds the message's owner and folder, not its content.",
          '{"format": "mailkeep-proof-1", "message": str, "store": str, "head": {}, '
          '"messageLeaf": {"leaf": {}, "path": [str]}, "entryLeaf": {"leaf": {}, "facts": {}, '
          '"path": [str]}}',
          Field("id", "string", description="The message id, <storeId>:<number>."),
          changes=False)  # where any message is filed: administrators', as GetMessages
def get_message_proof(call: Call) -> dict[str, Any]:
    message_id = call.arg("id")
    _rec, store, number = call.archive.message(message_id)
    return message_proof(call.master, store, message_id, number)


@function("GetConsistencyProof", "mailkeep extension: the proof (RFC 9162) that a store's tree "
          "at one signed head is a prefix of its tree at a later one: history was only "
          "appended to. `mailkeep verify-proof FILE --key KEY` checks it offline.",
          '{"format": "mailkeep-consistency-1", "store": str, "old": {}, "new": {}, '
          '"path": [str]}',
          Field("storeId", "number", description="The store (see GetStores)."),
          Field("oldSize", "number", low=1, high=1 << 62, description="The size of the "
                "older signed head (see GetTreeHeads)."),
          Field("newSize", "number", nullable=True, low=1, high=1 << 62,
                description="The size of the newer one; default: the newest."),
          changes=False, roles=ROLES)
def get_consistency_proof(call: Call) -> dict[str, Any]:
    rec = call.archive.find_store(int(call.arg("storeId")))
    store = call.archive.open_store(rec, write=False, check_state=False)
    new = call.arg("newSize")
    return consistency_proof(call.master, store, int(call.arg("oldSize")),
                             None if new is None else int(new))


@function("TimestampTreeHeads", "mailkeep extension: ask the RFC 3161 time-stamping authority "
          "of the setting tree.tsa_url to stamp each store's newest signed tree head that has "
          "no time-stamp yet (SHA-256 of the head as tree.heads holds it). The tokens are kept "
          "with the heads (GetTreeHeads withTimestamps, `mailkeep heads timestamps`); "
          "`openssl ts -verify` checks them with the authority's CA. Run it as a job.",
          '{"stamped": [{"store": str, "size": int, "genTime": str}], "failed": [str]}',
          long_running=True)
def timestamp_tree_heads(call: Call) -> dict[str, Any]:
    url = str(Settings(call.master).get("tree.tsa_url") or "").strip()
    if not url:
        raise InvalidArgument("No time-stamping authority: set tree.tsa_url first.")
    stamped: list[dict[str, Any]] = []
    failed: list[str] = []
    for row_id, signed in call.master.heads.newest_unstamped():
        call.ctx.check_cancelled()
        head = json.loads(signed)
        data = canonical(head)
        try:
            token = _stamp(url, data)
        except timestamp.TimestampFailed as exc:
            failed.append(f"store {head['store']}: {exc.message}")
            call.ctx.log(f"Store {head['store']}: {exc.message}")
            continue
        tst = base64.b64encode(token.answer).decode()
        call.master.heads.set_timestamp(row_id, tst)
        _append_timestamp(call, head, tst)
        when = token.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        stamped.append({"store": head["store"], "size": head["size"], "genTime": when})
        call.ctx.log(f"Store {head['store']}: head of {head['size']} leaves stamped at {when}")
    call.note(stamped=len(stamped), failed=len(failed))
    if failed and not stamped:
        raise timestamp.TimestampFailed("; ".join(failed)[:1000])
    return {"stamped": stamped, "failed": failed}


def _stamp(url: str, data: bytes) -> timestamp.Token:
    """A token for `data` from the authority at `url`: the request POSTed as RFC 3161 section
    3.4 says, the answer bounded in time and size and checked against the request."""
    if not url.startswith(("https://", "http://")):
        raise timestamp.TimestampFailed("tree.tsa_url is an http:// or https:// address")
    q = timestamp.query(data)
    try:
        with httpx.Client(timeout=TSA_TIMEOUT_S, follow_redirects=False) as client, \
                client.stream("POST", url, content=q.der,
                              headers={"Content-Type": "application/timestamp-query"}) as resp:
            if resp.status_code != 200:
                raise timestamp.TimestampFailed(f"the time-stamping authority answered HTTP "
                                                f"{resp.status_code}")
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > TSA_MAX_ANSWER:
                    raise timestamp.TimestampFailed("the time-stamping authority's answer is "
                                                    "too large")
    except httpx.HTTPError as exc:
        raise timestamp.TimestampFailed(f"the time-stamping authority cannot be reached "
                                        f"({type(exc).__name__})") from None
    return q.answered(body)


def _append_timestamp(call: Call, head: dict[str, Any], tst: str) -> None:
    """Into the store's tree.timestamps too, so that the store carries its own evidence."""
    for rec in call.archive.stores():
        try:
            store = call.archive.open_store(rec, write=False, check_state=False)
        except MailkeepError:
            continue
        if store.id == head["store"]:
            line = json.dumps({"size": head["size"], "root": head["root"], "at": head["at"],
                               "tsr": tst}, sort_keys=True) + "\n"
            store.append_evidence(TIMESTAMPS_FILE, line.encode())
            return


@function("SendTreeHeads", "mailkeep extension: mail the signed tree heads (JSON lines, the "
          "public key first) through the notification mail's server to an address the "
          "archive's administrator does not control (an auditor, a notary). Run it as a "
          "scheduled job to send them regularly. Answers what the SMTP server said.",
          '{"to": str, "heads": int, "response": str}',
          Field("to", "string", description="The recipient's address."), SINCE)
def send_tree_heads(call: Call) -> dict[str, Any]:
    from mailkeep.notify.mailer import Mailer  # the mail side loads only when it is used
    to = (call.arg("to") or "").strip()
    if not to or "@" not in to or any(c in to for c in "\r\n,;<> ") or len(to) > 254:
        raise InvalidArgument("to is one mail address.")
    text, count = export_lines(call)
    response = Mailer(call.archive.data_dir, call.ctx.log).send(
        f"mailkeep signed tree heads ({count})",
        "The signed heads of this archive's Merkle trees, one JSON object a line; the first "
        "line is the public key that checks them. Keep them: `mailkeep verify --heads FILE` "
        "shows whether the archive's history was rewritten since.\n\n" + text, to=to)
    call.master.audit.write(call.caller.actor, "TreeHeadsSent", to=to, heads=count)
    return {"to": to, "heads": count, "response": response}


@function("ExportTreeHeads", "mailkeep extension: write the signed tree heads (JSON lines, "
          "the public key first) to a file, e.g. on a WORM share; an existing file is not "
          "overwritten (a new name each time: heads-<time>.jsonl in the directory given). "
          "The directory must lie outside the data directory and within paths.allowed.",
          '{"path": str, "heads": int}',
          Field("directory", "string", description="An absolute directory path."), SINCE)
def export_tree_heads(call: Call) -> dict[str, Any]:
    raw = call.arg("directory") or ""
    if not Path(raw).is_absolute():
        raise InvalidArgument("directory must be an absolute path.")
    roots = roots_of(Settings(call.master).get("paths.allowed"))
    target = checked_place(Path(raw), call.archive.data_dir, "directory", roots)
    if not target.is_dir():
        raise InvalidArgument(f"directory {target} does not exist.")
    text, count = export_lines(call)
    path = target / time.strftime("heads-%Y%m%dT%H%M%SZ.jsonl", time.gmtime())
    if not write_new(path, text.encode()):
        raise InvalidArgument(f"{path} exists already; try again in a second.")
    call.master.audit.write(call.caller.actor, "TreeHeadsExported", path=str(path),
                            heads=count)
    return {"path": str(path), "heads": count}
