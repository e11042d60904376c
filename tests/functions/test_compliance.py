"""The compliance configuration and legal hold: while the hold is on, no deletion path works,
whichever interface asks (the Administration API, the command line in-process, a job), each
refusal names the hold and its reason and changes nothing; the configuration keeps the keys it
does not know; turning the hold on or off needs a reason and is audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.archive import Archive
from tests.apiclient import api_client, archive_with_messages, finish, invoke
from tests.helpers import mk, mk_ok

HOLD = {"legalHold": {"enabled": True, "reason": "Litigation 2026-17"}}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = archive_with_messages(tmp_path / "data", tmp_path / "mail", 5)
    mk_ok(data, "call", "CreateStore", "name=Second")
    mk_ok(data, "call", "SetStoreRequestedState", "id=2", "requestedState=current")
    return data


def result(api: TestClient, name: str, **args: Any) -> dict[str, Any]:
    body, _log = finish(api, invoke(api, name, **args))
    return body


def messages(data: Path) -> int:
    with Archive(data) as archive:
        return sum(len(archive.open_store(rec).catalog.entry_keys())
                   for rec in archive.stores())


def segment_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "stores").rglob("segments/*") if p.is_file())


def test_legal_hold_blocks_every_deletion_path(data: Path) -> None:
    mk_ok(data, "call", "DeleteMessage", "id=1:5", "reason=before the hold")
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(HOLD)}")
    assert messages(data) == 4
    held = segment_bytes(data)
    assert held > 0
    with api_client(data) as api:
        for name, args in (("DeleteMessage", {"id": "1:1", "reason": "clean-up"}),
                           ("CompactStore", {"id": "1"}),
                           ("MergeStore", {"id": "2", "sourceId": "1"}),
                           ("DetachStore", {"id": "1"})):
            body = result(api, name, **args)
            assert body["statusCode"] == "failed", (name, body)
            message = body["error"]["message"]
            assert "legal hold" in message and "Litigation 2026-17" in message, message
    # the command line in-process, and a job, meet the same refusal
    refused = mk(data, "call", "DeleteMessage", "id=1:2", "reason=clean-up")
    assert refused.exit_code != 0 and "Litigation 2026-17" in refused.output
    mk_ok(data, "call", "CreateJob", "name=purge", "action=DeleteMessage id=1:3 reason=old",
          "owner=admin", "timeZoneId=UTC")
    mk_ok(data, "call", "RunJobAsync", "id=1")
    [run] = json.loads(mk_ok(data, "call", "GetJobResults", "fromIncluding=2000-01-01",
                             "toExcluding=2100-01-01", "timeZoneId=UTC").stdout)
    assert run["result"] == "failed" and "legal hold" in run["error"]
    # nothing changed: the messages, the deleted one's bytes (no compaction), the stores
    assert messages(data) == 4
    assert segment_bytes(data) == held
    with Archive(data) as archive:
        assert [r.id for r in archive.stores()] == [1, 2]

    lift = {"legalHold": {"enabled": False, "reason": "Case closed"}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(lift)}")
    mk_ok(data, "call", "DeleteMessage", "id=1:2", "reason=clean-up")
    assert messages(data) == 3


def test_the_configuration_round_trip_and_its_audit(data: Path) -> None:
    with api_client(data) as api:
        conf = result(api, "GetComplianceConfiguration")["result"]
        assert conf == {"legalHold": {"enabled": False, "reason": None, "setBy": None,
                                      "setAt": None},
                        "archiveAccess": {"administrators": False, "auditors": True,
                                          "reason": None, "setBy": None, "setAt": None},
                        "auditing": {"off": []}}
        # a client writes back what it read with one key changed, and keys of its own
        conf["legalHold"] = {"enabled": True, "setBy": "forged", "setAt": "1999-01-01"}
        conf["archiveAccessOther"] = {"x": [1, 2]}
        body = result(api, "SetComplianceConfiguration", config=json.dumps(conf))
        assert body["statusCode"] == "failed"
        assert "reason is required to turn the legal hold on" in body["error"]["message"]
        assert result(api, "GetComplianceConfiguration")["result"]["legalHold"]["enabled"] \
            is False  # checked whole: nothing saved
        conf["legalHold"]["reason"] = "Audit by the regulator"
        saved = result(api, "SetComplianceConfiguration", config=json.dumps(conf))["result"]
        hold = saved["legalHold"]
        assert hold["enabled"] is True and hold["reason"] == "Audit by the regulator"
        assert hold["setBy"] == "api:admin" and hold["setAt"] != "1999-01-01"
        again = result(api, "GetComplianceConfiguration")["result"]
        assert again["archiveAccessOther"] == {"x": [1, 2]} and again["legalHold"] == hold
        # written back unchanged: the hold stays as it was set
        result(api, "SetComplianceConfiguration", config=json.dumps(again))
        assert result(api, "GetComplianceConfiguration")["result"]["legalHold"] == hold
        for bad in ('[1]', '{"legalHold": {"enabled": "yes"}}',
                    '{"legalHold": {"enabled": false, "reason": "a\\nb"}}'):
            assert result(api, "SetComplianceConfiguration", config=bad)["statusCode"] \
                == "failed", bad
        log = result(api, "GetAuditLog", action="ComplianceChangeSettings")["result"]
    changes = [r["details"] for r in log["records"]]
    assert changes[-1]["legalHold"] is True and changes[-1]["reason"] == "Audit by the regulator"


def test_the_configuration_refuses_what_would_jam_or_hide(data: Path) -> None:
    """What an attack tried: NaN and infinite numbers (not JSON, and a browser could not read
    the answer back), nesting deep enough to break a later write (the hold could then be
    neither placed nor lifted), and a reason with control or direction characters."""
    deep = "[" * 40 + "]" * 40
    for bad, said in (('{"x": NaN}', "NaN"), ('{"x": 1e400}', "infinite"),
                      (f'{{"notes": {deep}}}', "nests more than 32"),
                      ('{"legalHold": {"enabled": true, "reason": "a\\u202eb"}}',
                       "control or direction"),
                      ('{"legalHold": {"enabled": true, "reason": "a\\u0085b"}}',
                       "control or direction")):
        refused = mk(data, "call", "SetComplianceConfiguration", f"config={bad}")
        assert refused.exit_code != 0 and said in refused.output, (bad, refused.output)
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(HOLD)}")
    lift = {"legalHold": {"enabled": False, "reason": "Done"}}
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(lift)}")


def test_a_compaction_that_meets_a_new_hold_changes_nothing(data: Path) -> None:
    """A hold placed while a compaction runs stops it at its last moment, before the new
    segments replace the old (the hook the function gives compact(); the hold is placed from
    inside it, as a second administrator would meanwhile)."""
    from mailkeep.core.admin.compliance import Compliance
    from mailkeep.core.errors import Conflict
    from mailkeep.core.storage.compact import compact

    mk_ok(data, "call", "DeleteMessage", "id=1:5", "reason=before the hold")
    before = segment_bytes(data)
    with Archive(data) as archive:
        store = archive.open_store(archive.find_store(1), write=True, check_state=False)

        def hold_placed_meanwhile() -> None:
            Compliance(archive.master).set(HOLD, "mcapi:other-admin")
            Compliance(archive.master).require_no_hold("compacting store 'Default'")

        with pytest.raises(Conflict, match="legal hold"):
            compact(store, before_swap=hold_placed_meanwhile)
    assert segment_bytes(data) == before
    assert messages(data) == 4


def test_no_side_door_deletes_a_store(data: Path, tmp_path: Path) -> None:
    """Two ways an attack removed a whole store under hold, both shut: a directory profile
    watching (and deleting) a store that lives outside the data directory, and a store
    created next to a store whose directory looks like a creation a crash cut off."""
    outside = tmp_path / "ext" / "Ext"
    mk_ok(data, "call", "CreateUser", "userName=alice", "privileges=login")
    mk_ok(data, "call", "CreateStore", "name=Ext", f"databasePath={outside}")
    for path in (outside, outside.parent, outside / "segments"):
        refused = mk(data, "call", "CreateProfile", "properties=" + json.dumps(
            {"name": "sweep", "type": "directory", "userName": "alice", "path": str(path),
             "pattern": "*", "deleteAfterArchive": True}))
        assert refused.exit_code != 0 and "store 'Ext'" in refused.output, refused.output
    looks_stale = data / "stores" / ".Evil.creating-x"
    mk_ok(data, "call", "CreateStore", "name=Evil", f"databasePath={looks_stale}")
    mk_ok(data, "call", "SetComplianceConfiguration", f"config={json.dumps(HOLD)}")
    mk_ok(data, "call", "CreateStore", "name=Trap", f"databasePath={data / 'stores' / 'Evil'}")
    assert (looks_stale / "store.json").exists()
    with Archive(data) as archive:
        archive.open_store(archive.find_store("Evil"))  # still there, still opens
