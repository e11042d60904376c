"""Tamper evidence from a shell: `mailkeep heads ...` (the signed tree heads: the public key,
the list, an export, a consistency proof), `mailkeep proof ID --to DIR` (a message's proof)
and `mailkeep verify-proof` (checks either proof with the public key alone: no data directory,
no server)."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from mailkeep.cli.common import archive_of, call, caller, domain_errors, err, out, shown
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.files import write_new
from mailkeep.core.heads import parse_public_key
from mailkeep.core.proof import (
    MESSAGE_FILE,
    PROOF_FILE,
    verify_consistency_proof,
    verify_message_proof,
)
from mailkeep.core.storage.tree import canonical

README = """This directory proves that {message} is in the mailkeep store {store} exactly as
message.eml holds it, and how it was filed (proof.json: "entryLeaf"."facts").

Check it with the archive's public key (ed25519:..., from its operator or from an export of
its signed heads), on any machine with mailkeep installed, without the archive:

    mailkeep verify-proof {dirname} --key ed25519:...

What is checked: the signed tree head (Ed25519); that the SHA-256 of message.eml, with the
salt of the message's leaf, is what the leaf commits to; that the filing's facts are what its
leaf commits to and name this message; that both leaves lead to the signed root (RFC 9162
inclusion proofs).
"""


def _when(epoch: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(epoch)))
    except (TypeError, ValueError, OverflowError):
        return "?"


@click.group()
def heads() -> None:
    """Signed tree heads: the public key, the list, an export, consistency proofs."""


@heads.command("key")
@click.pass_context
@domain_errors
def heads_key(ctx: click.Context) -> None:
    """Print the public key that checks this archive's signed heads and proofs."""
    click.echo(call(ctx, "GetTreeHeads", since=1 << 40)["publicKey"])


@heads.command("list")
@click.option("--store", "store_ref", help="Only this store's heads (name or id).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
@click.pass_context
@domain_errors
def heads_list(ctx: click.Context, store_ref: str | None, as_json: bool) -> None:
    """The signed heads, oldest first."""
    args: dict[str, Any] = {}
    if store_ref:
        with archive_of(ctx) as archive:
            args["storeId"] = archive.find_store(store_ref).id
    got = call(ctx, "GetTreeHeads", **args)
    for h in got["heads"]:
        if as_json:
            click.echo(json.dumps(h, sort_keys=True))
        else:
            out.print(f"{_when(h['at'])}  store {shown(h['store'])}  {h['size']:>9} leaves  "
                      f"root {shown(h['root'])}", highlight=False)


@heads.command("export")
@click.option("--to", "target", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file (not overwritten); default: standard output.")
@click.option("--since", type=int, default=0, help="Only heads signed from this epoch second.")
@click.pass_context
@domain_errors
def heads_export(ctx: click.Context, target: Path | None, since: int) -> None:
    """The signed heads as JSON lines, the public key first: keep them where the archive's
    administrator cannot change them (`mailkeep verify --heads FILE` checks against them)."""
    got = call(ctx, "GetTreeHeads", since=since)
    lines = [json.dumps({"publicKey": got["publicKey"]})]
    lines += [json.dumps(h, sort_keys=True) for h in got["heads"]]
    text = "\n".join(lines) + "\n"
    if target is None:
        sys.stdout.write(text)
        return
    _write_new(target, text)
    out.print(f"{len(got['heads'])} heads written to {shown(str(target))}", highlight=False)


@heads.command("timestamps")
@click.option("--to", "target", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="A new directory for the files.")
@click.pass_context
@domain_errors
def heads_timestamps(ctx: click.Context, target: Path) -> None:
    """Write each time-stamped head as head-<store>-<size>.json (its exact bytes) with its
    RFC 3161 token head-<store>-<size>.tsr, for `openssl ts -verify -data X.json -in X.tsr
    -CAfile <the authority's CA>`."""
    if os.path.lexists(target):
        raise InvalidArgument(f"{target} exists: the files go into a new directory")
    got = call(ctx, "GetTreeHeads", withTimestamps=True)
    stamped = [h for h in got["heads"] if "tsr" in h]
    target.mkdir(mode=0o700, parents=True)
    for h in stamped:
        tsr = base64.b64decode(h.pop("tsr"))
        name = f"head-{h['store'][:8]}-{h['size']}"
        (target / f"{name}.json").write_bytes(canonical(h))
        (target / f"{name}.tsr").write_bytes(tsr)
    out.print(f"{len(stamped)} time-stamped heads written to {shown(str(target))}",
              highlight=False)


@heads.command("consistency")
@click.argument("store_ref", metavar="STORE")
@click.option("--from", "old", type=click.IntRange(1), required=True,
              help="Size of the older signed head.")
@click.option("--to-size", "new", type=click.IntRange(1), help="Size of the newer one "
              "(default: the newest).")
@click.option("--out", "target", type=click.Path(path_type=Path, dir_okay=False),
              required=True, help="The proof's file (not overwritten).")
@click.pass_context
@domain_errors
def heads_consistency(ctx: click.Context, store_ref: str, old: int, new: int | None,
                      target: Path) -> None:
    """Prove that STORE's tree at one signed head is a prefix of its tree at a later one."""
    with archive_of(ctx) as archive:
        store_id = archive.find_store(store_ref).id
    args: dict[str, Any] = {"storeId": store_id, "oldSize": old}
    if new is not None:
        args["newSize"] = new
    proof = call(ctx, "GetConsistencyProof", **args)
    _write_new(target, json.dumps(proof, indent=1, sort_keys=True) + "\n")
    out.print(f"consistency proof {proof['old']['size']} -> {proof['new']['size']} leaves "
              f"written to {shown(str(target))}", highlight=False)


def _write_new(path: Path, text: str) -> None:
    if not write_new(path, text.encode()):
        raise InvalidArgument(f"{path} exists: choose a new name")


@click.command("proof")
@click.argument("message_id", metavar="ID")
@click.option("--to", "target", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="A new directory for the proof.")
@click.pass_context
@domain_errors
def proof(ctx: click.Context, message_id: str, target: Path) -> None:
    """Write message ID's exact bytes, its inclusion proof and the signed tree head to a new
    directory: `mailkeep verify-proof DIR --key KEY` checks it anywhere."""
    if os.path.lexists(target):
        raise InvalidArgument(f"{target} exists: the proof goes into a new directory")
    doc = call(ctx, "GetMessageProof", id=message_id)
    target.mkdir(mode=0o700, parents=True)
    with archive_of(ctx) as archive:
        _rec, store, number = archive.message(message_id)
        hit = store.catalog.entry(number)
        archive.master.audit.write(caller().actor, "MessageRetrieveContent", id=message_id,
                                   owner=hit.owner if hit else None, purpose="proof")
        with open(target / MESSAGE_FILE, "xb") as fh:
            for chunk in store.read_chunks(number):
                fh.write(chunk)
    _write_new(target / PROOF_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _write_new(target / "README.txt", README.format(message=message_id, store=doc["store"],
                                                     dirname=target.name))
    out.print(f"proof of {shown(message_id)} under the head of {doc['head']['size']} leaves "
              f"signed {_when(doc['head']['at'])} written to {shown(str(target))}",
              highlight=False)


@click.command("verify-proof")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--key", "key", required=True, help="The archive's public key: ed25519:..., or "
              "a file holding it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@domain_errors
def verify_proof(path: Path, key: str, as_json: bool) -> None:
    """Check a proof with the public key alone: a message's (a directory from `mailkeep
    proof`) or a consistency proof (a file from `mailkeep heads consistency`). Exit code 0:
    valid; 1: not."""
    public = parse_public_key(key)
    checked = (verify_message_proof(path, public) if path.is_dir()
               else verify_consistency_proof(path, public))
    if as_json:
        click.echo(json.dumps({"ok": checked.ok, "facts": checked.facts,
                               "problems": checked.problems}, indent=2))
    elif checked.ok and path.is_dir():
        f = checked.facts
        out.print(f"[green]valid[/green]: message number {shown(str(f['number']))} "
                  f"({f['bytes']} bytes, SHA-256 {f['sha256']}) was filed in "
                  f"{shown(str(f['owner']) + ('/' + str(f['folder']) if f['folder'] else ''))}"
                  f" at {_when(f['archivedAt'])}"
                  f", in store {shown(str(f['store']))}; the head of {f['headSize']} leaves "
                  f"signed {_when(f['headAt'])} by key {f['key']} includes it", highlight=False)
    elif checked.ok:
        f = checked.facts
        out.print(f"[green]valid[/green]: store {shown(str(f['store']))}'s tree of "
                  f"{f['newSize']} leaves (signed {_when(f['newAt'])}) extends its tree of "
                  f"{f['oldSize']} leaves (signed {_when(f['oldAt'])}): only appended to",
                  highlight=False)
    else:
        for p in checked.problems:
            err.print(f"[red]not valid:[/red] {shown(p)}", highlight=False)
    if not checked.ok:
        sys.exit(1)
