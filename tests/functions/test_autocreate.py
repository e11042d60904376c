"""Starting a new current store automatically (GetStoreAutoCreateConfiguration,
SetStoreAutoCreateConfiguration): real mail archived by `mailkeep import` and by a profile run of
the server rolls over into a new store once the current one has grown to the size limit, with
nothing lost and the rollover in the audit log; it does not when the configuration is off; bad
configurations are refused and change nothing.

The time-based modes (monthly, quarterly, yearly) follow the archive's clock (the server's, as
the scheduler has it): the rule at the period boundaries, and a monthly rollover end to end."""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mailkeep.core.admin import autocreate
from mailkeep.core.archive import Archive
from mailkeep.core.storage.verify import verify
from tests.apiclient import api_client, invoke
from tests.functions.test_server_functions import (
    SHELL_ACTOR,
    assert_documented_shape,
    assert_metadata_as_original,
    cli_call,
    cli_result,
    metadata,
    no_audit,
    one_audit,
    run,
    succeeded,
)
from tests.helpers import audit_since, last_audit_id, mk_ok

OFF = {"mode": "none", "sizeLimitMB": None, "namePattern": "", "basePath": None,
       "encrypt": False}


def write_mail(folder: Path, tag: str, count: int, body_bytes: int) -> Path:
    """`count` messages, message i saying "<tag>word<i>", each with `body_bytes` of random
    base64 text (which compresses badly, so the store grows by about that much)."""
    rng = random.Random(tag)
    folder.mkdir(parents=True)
    for i in range(count):
        body = base64.encodebytes(rng.randbytes(body_bytes)).decode()
        (folder / f"{i}.eml").write_text(
            f"From: {tag}{i}@example.org\r\nSubject: {tag} {i}\r\nMessage-ID: <{tag}.{i}@x>"
            f"\r\n\r\n{tag}word{i}\r\n{body}")
    return folder


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory whose store Default holds more than 1 MB on disk (8 messages of
    100 KB)."""
    path = tmp_path / "data"
    mk_ok(path, "import", str(write_mail(tmp_path / "big", "big", 8, 100_000)))
    return path


@pytest.fixture
def api(data: Path) -> Iterator[TestClient]:
    with api_client(data) as c:
        yield c


def stores(data: Path) -> list[tuple[int, str, str, int]]:
    """(id, name, state, messages) of every store."""
    return [(s["id"], s["name"], s["requestedState"], s["statisticsCount"])
            for s in cli_result(data, "GetStores", includeSize="true")]


def store_of(data: Path, word: str) -> int:
    """The id of the store holding the one message with this word."""
    with Archive(data) as archive:
        found = archive.search(word)
        assert found.total == 1, (word, found.total)
        return int(found.hits[0].message_id.split(":")[0])


def rollovers(data: Path, after: int = 0) -> list[dict[str, Any]]:
    return [d for actor, action, d in audit_since(data, after)
            if (actor, action) == ("system", "store.autocreate")]


# -- reading and changing the configuration ----------------------------------------------------
def test_the_configuration_is_off_until_set(api: TestClient, data: Path) -> None:
    """Nothing is started automatically until configured; the answer has the documented shape
    through the API and `mailkeep call`, and reading is not audited."""
    before = last_audit_id(data)
    conf = succeeded(api, "GetStoreAutoCreateConfiguration")
    no_audit(data, before, "GetStoreAutoCreateConfiguration")
    assert_documented_shape("GetStoreAutoCreateConfiguration", conf)
    assert conf == OFF
    assert cli_result(data, "GetStoreAutoCreateConfiguration") == conf


def test_set_changes_the_fields_given_and_answers_the_configuration_in_force(
        api: TestClient, data: Path, tmp_path: Path) -> None:
    """Fields not given keep their values; the answer is what Get then says; each change is
    one audit record with the configuration given and the one before; {"mode": "none"}
    stops it. Through `mailkeep call` too."""
    before = last_audit_id(data)
    conf = succeeded(api, "SetStoreAutoCreateConfiguration",
                     config='{"mode": "size", "sizeLimitMB": 51200}')
    assert_documented_shape("SetStoreAutoCreateConfiguration", conf)
    assert conf == {**OFF, "mode": "size", "sizeLimitMB": 51200, "namePattern": "Store {n}"}
    details = one_audit(data, before, "SetStoreAutoCreateConfiguration", "api:admin")
    assert details["args"] == {"config": {"mode": "size", "sizeLimitMB": 51200}}
    assert (details["outcome"], details["before"]) == ("succeeded", OFF)

    elsewhere = str(tmp_path / "stores-elsewhere")
    before = last_audit_id(data)
    conf = cli_result(data, "SetStoreAutoCreateConfiguration", config=json.dumps(
        {"basePath": elsewhere, "encrypt": True}))
    assert conf == {"mode": "size", "sizeLimitMB": 51200, "namePattern": "Store {n}",
                    "basePath": elsewhere, "encrypt": True}
    assert one_audit(data, before, "SetStoreAutoCreateConfiguration", SHELL_ACTOR)[
        "outcome"] == "succeeded"
    assert succeeded(api, "GetStoreAutoCreateConfiguration") == conf

    conf = succeeded(api, "SetStoreAutoCreateConfiguration", config='{"mode": "none"}')
    assert conf["mode"] == "none"
    assert succeeded(api, "GetStoreAutoCreateConfiguration") == conf


BAD = [
    ('{"mode": "weekly"}', "mode must be one of none, monthly, quarterly, yearly, size"),
    ('{"mode": "size", "sizeLimitMB": null}', "mode size needs sizeLimitMB"),
    ('{"sizeLimitMB": 0}', "sizeLimitMB must be a whole number of megabytes from 1"),
    ('{"sizeLimitMB": "5"}', "sizeLimitMB must be a whole number of megabytes"),
    ('{"sizeLimitMB": 1.5}', "sizeLimitMB must be a whole number of megabytes"),
    ('{"sizeLimitMB": true}', "sizeLimitMB must be a whole number of megabytes"),
    ('{"namePattern": "{day}"}', "the placeholders {year}, {month}, {quarter} and {n}"),
    ('{"namePattern": "{0}"}', "must make a store name"),
    ('{"namePattern": "a/{n}"}', "must make a store name (1-100 characters, no slashes"),
    ('{"basePath": "relative/dir"}', "basePath must be an absolute directory path"),
    ('{"encrypt": "yes"}', "encrypt must be true or false"),
    ('{"colour": "red"}', "unknown field 'colour'"),
    ('["mode", "size"]', "must be a JSON object"),
]


@pytest.mark.parametrize(("config", "error"), BAD)
def test_bad_configurations_are_refused_and_change_nothing(api: TestClient, data: Path,
                                                           config: str, error: str) -> None:
    """Checked as a whole before anything is saved: the error says what is wrong, the
    configuration in force stays, the failed call is one audit record; `mailkeep call`
    refuses it with exit code 2."""
    good = succeeded(api, "SetStoreAutoCreateConfiguration",
                     config='{"mode": "size", "sizeLimitMB": 5}')
    before = last_audit_id(data)
    final, _ = run(api, "SetStoreAutoCreateConfiguration", config=config)
    assert final["statusCode"] == "failed", final
    assert error in final["error"]["message"], final["error"]
    assert final["error"]["details"] == "invalid_argument"
    assert one_audit(data, before, "SetStoreAutoCreateConfiguration", "api:admin")[
        "outcome"] == "failed"
    res = cli_call(data, "SetStoreAutoCreateConfiguration", config=config)
    assert res.exit_code == 2 and error in res.stderr, res.output
    assert succeeded(api, "GetStoreAutoCreateConfiguration") == good


@pytest.mark.parametrize("pattern", ["Store {n} ", " {year}", "{year}\\{month}", "{n:>120}",
                                     "{year.real}"])
def test_name_patterns_that_make_no_store_name_are_refused(api: TestClient, data: Path,
                                                           pattern: str) -> None:
    """A namePattern whose names the archive would refuse as a store name (surrounding spaces,
    a backslash, more than 100 characters) or that is no format at all must be refused when
    it is set, with a clear argument error, not accepted to fail later: at the rollover,
    every message that arrives is then refused."""
    before = last_audit_id(data)
    final, _ = run(api, "SetStoreAutoCreateConfiguration", config=json.dumps(
        {"mode": "size", "sizeLimitMB": 1, "namePattern": pattern}))
    assert one_audit(data, before, "SetStoreAutoCreateConfiguration", "api:admin")
    assert final["statusCode"] == "failed", final["result"]
    assert final["error"]["details"] == "invalid_argument", final["error"]
    assert "namePattern" in final["error"]["message"]
    assert succeeded(api, "GetStoreAutoCreateConfiguration") == OFF


def test_arguments_that_do_not_parse_are_not_a_call(api: TestClient, data: Path) -> None:
    """config that is not JSON, or no config: refused before anything runs, not audited."""
    before = last_audit_id(data)
    body = invoke(api, "SetStoreAutoCreateConfiguration", config="{mode: size}")
    assert body["statusCode"] == "failed" and "not valid JSON" in body["error"]["message"]
    body = invoke(api, "SetStoreAutoCreateConfiguration")
    assert body["error"]["message"] == "Missing API argument config."
    assert audit_since(data, before) == []
    assert succeeded(api, "GetStoreAutoCreateConfiguration") == OFF


# -- the rollover --------------------------------------------------------------------------------
def test_size_rollover_starts_a_new_current_store(data: Path, tmp_path: Path) -> None:
    """Default holds more than 1 MB. With the limit at 1 MB the next import starts "Store 2":
    it is current, Default is normal and keeps its mail, the new mail is in Store 2 and found,
    nothing is lost; the audit log says the configuration started it. The import after that
    goes on into Store 2 (it is small): no third store."""
    assert stores(data) == [(1, "Default", "current", 8)]
    cli_result(data, "SetStoreAutoCreateConfiguration",
               config='{"mode": "size", "sizeLimitMB": 1}')
    before = last_audit_id(data)
    mk_ok(data, "import", str(write_mail(tmp_path / "next", "next", 3, 1000)))
    assert stores(data) == [(1, "Default", "normal", 8), (2, "Store 2", "current", 3)]
    assert [store_of(data, f"nextword{i}") for i in range(3)] == [2, 2, 2]
    assert [store_of(data, f"bigword{i}") for i in range(8)] == [1] * 8
    [rollover] = rollovers(data, before)
    assert {k: rollover[k] for k in ("id", "name", "previous", "mode")} == {
        "id": 2, "name": "Store 2", "previous": "Default", "mode": "size"}
    assert rollover["path"] == str(data.resolve() / "stores" / "Store 2")

    mk_ok(data, "import", str(write_mail(tmp_path / "later", "later", 2, 1000)))
    assert stores(data) == [(1, "Default", "normal", 8), (2, "Store 2", "current", 5)]
    assert rollovers(data, before) == [rollover]
    with Archive(data) as archive:
        assert archive.search("").total == 13
        for rec in archive.stores():
            assert verify(archive.open_store(rec, write=True)).ok


def test_no_rollover_when_off_or_within_the_period(data: Path, tmp_path: Path) -> None:
    """Off (never set, or set back to none after a size limit) the full store takes all the
    mail; so it does in yearly mode within the year the store was made (by the real clock)."""
    mk_ok(data, "import", str(write_mail(tmp_path / "a", "a", 2, 1000)))
    cli_result(data, "SetStoreAutoCreateConfiguration",
               config='{"mode": "size", "sizeLimitMB": 1}')
    cli_result(data, "SetStoreAutoCreateConfiguration", config='{"mode": "none"}')
    mk_ok(data, "import", str(write_mail(tmp_path / "b", "b", 2, 1000)))
    cli_result(data, "SetStoreAutoCreateConfiguration", config='{"mode": "yearly"}')
    mk_ok(data, "import", str(write_mail(tmp_path / "c", "c", 2, 1000)))
    assert stores(data) == [(1, "Default", "current", 14)]
    assert rollovers(data) == []


def test_rollover_through_a_profile_run_of_the_server(data: Path, tmp_path: Path) -> None:
    """The server files mail through its store writer, which asks for the current store at
    each batch: a directory profile run (RunProfile through the API, followed to its end)
    rolls over too, and its worker result counts every message archived."""
    drop = write_mail(tmp_path / "drop", "drop", 4, 1000)
    finished = time.time() - 60  # written a minute ago: settled (younger files wait a run)
    for path in drop.iterdir():
        os.utime(path, (finished, finished))
    with api_client(data) as api:
        succeeded(api, "SetStoreAutoCreateConfiguration",
                  config='{"mode": "size", "sizeLimitMB": 1}')
        profile = succeeded(api, "CreateProfile", properties=json.dumps(
            {"name": "drop", "type": "directory", "userName": "admin", "path": str(drop)}))
        before = last_audit_id(data)
        result = succeeded(api, "RunProfile", id=str(profile["id"]))
        assert (result["result"], result["itemsArchived"]) == ("succeeded", 4)
    assert stores(data) == [(1, "Default", "normal", 8), (2, "Store 2", "current", 4)]
    assert [store_of(data, f"dropword{i}") for i in range(4)] == [2] * 4
    assert [r["name"] for r in rollovers(data, before)] == ["Store 2"]


def test_rollover_names_places_and_encrypts_the_new_store_as_configured(
        data: Path, tmp_path: Path) -> None:
    """namePattern, basePath and encrypt: the new store is named from the pattern, made in
    the directory given, encrypted under the master key, and its mail reads back."""
    base = tmp_path / "more-stores"
    cli_result(data, "SetStoreAutoCreateConfiguration", config=json.dumps(
        {"mode": "size", "sizeLimitMB": 1, "namePattern": "Overflow {year}-{n}",
         "basePath": str(base), "encrypt": True}))
    mk_ok(data, "import", str(write_mail(tmp_path / "next", "next", 2, 1000)))
    name = f"Overflow {datetime.now().year}-2"
    [new] = [s for s in cli_result(data, "GetStores", includeSize="true") if s["id"] == 2]
    assert (new["name"], new["requestedState"], new["encrypted"], new["statisticsCount"]) == (
        name, "current", True, 2)
    assert new["databasePath"] == str(base.resolve() / name)
    assert (data / "conf" / "master.key").exists()
    with Archive(data) as archive:
        hit = archive.search("nextword1").hits[0]
        _rec, store, number = archive.message(hit.message_id)
        assert store.read(number) == (tmp_path / "next" / "1.eml").read_bytes()


def test_a_store_named_with_a_hash_sign_is_read(data: Path, tmp_path: Path) -> None:
    """namePattern "Archive #{n}" is accepted (a '#' is allowed in a store name): the store it
    starts must be readable like any other: its mail found and read back, GetStores without
    an error, and nothing left beside it in the stores' directory."""
    cli_result(data, "SetStoreAutoCreateConfiguration", config=json.dumps(
        {"mode": "size", "sizeLimitMB": 1, "namePattern": "Archive #{n}"}))
    mk_ok(data, "import", str(write_mail(tmp_path / "next", "next", 2, 1000)))
    [new] = [s for s in cli_result(data, "GetStores", includeSize="true") if s["id"] == 2]
    assert new["name"] == "Archive #2"
    assert (new["error"], new["statisticsCount"]) == (None, 2), new
    assert store_of(data, "nextword0") == 2
    assert sorted(p.name for p in (data / "stores").iterdir()) == ["Archive #2", "Default"]


def test_metadata_matches_the_original(api: TestClient) -> None:
    meta = metadata(api)
    for name in ("GetStoreAutoCreateConfiguration", "SetStoreAutoCreateConfiguration"):
        assert_metadata_as_original(meta, name)


# -- the time-based rule, given a clock ------------------------------------------------------------
def at(*when: int) -> float:
    return datetime(*when).timestamp()  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "created", "now", "is_due"), [
    ("monthly", (2026, 1, 31, 23, 59), (2026, 2, 1, 0, 0), True),
    ("monthly", (2026, 2, 1, 0, 0), (2026, 2, 28, 23, 59), False),
    ("monthly", (2025, 12, 31, 23, 59), (2026, 1, 1, 0, 1), True),
    ("quarterly", (2026, 3, 31, 23, 59), (2026, 4, 1, 0, 0), True),
    ("quarterly", (2026, 1, 1, 0, 0), (2026, 3, 31, 23, 59), False),
    ("yearly", (2026, 12, 31, 23, 59), (2027, 1, 1, 0, 0), True),
    ("yearly", (2026, 1, 1, 0, 0), (2026, 12, 31, 23, 59), False),
    ("none", (2020, 1, 1, 0, 0), (2026, 1, 1, 0, 0), False),
])
def test_a_time_based_rollover_is_due_at_the_first_mail_of_a_new_period(
        mode: str, created: tuple[int, ...], now: tuple[int, ...], is_due: bool) -> None:
    """The rule the archive applies, given the time: due once the server's clock is in a later
    period than the current store's creation, and never when off."""
    config = autocreate.parse({"mode": mode})
    assert autocreate.due(config, at(*created), 0, now=at(*now)) is is_due


def test_time_based_names_follow_the_period() -> None:
    """The default names of the time-based modes, for the first mail of a period."""
    when = datetime(2026, 4, 1, 0, 0)
    assert [autocreate.name_for(autocreate.DEFAULT_PATTERN[m], when, 3)
            for m in ("monthly", "quarterly", "yearly", "size")] == [
        "2026-04", "2026-Q2", "2026", "Store 3"]


def test_a_monthly_rollover_follows_the_archives_clock(tmp_path: Path) -> None:
    """Monthly, on the archive's clock (the server's, set here as a test sets the
    scheduler's): mail filed in January stays in the store made in January; the first mail
    of February starts "2026-02" and the rest of February's mail follows it there; March
    starts "2026-03". Each rollover once, audited; nothing lost."""
    from mailkeep.core.ingest import Importer
    from mailkeep.sources.detect import read_paths

    data, now = tmp_path / "data", [at(2026, 1, 20, 12, 0)]

    def file_mail(tag: str) -> None:
        with Archive(data, clock=lambda: now[0]) as archive:
            Importer(archive, workers=1).run(read_paths([write_mail(tmp_path / tag, tag, 2,
                                                                    100)]))

    file_mail("jan")
    cli_result(data, "SetStoreAutoCreateConfiguration", config='{"mode": "monthly"}')
    file_mail("janlate")
    now[0] = at(2026, 2, 1, 0, 5)
    file_mail("feb")
    now[0] = at(2026, 2, 27, 18, 0)
    file_mail("feblate")
    now[0] = at(2026, 3, 2, 9, 0)
    file_mail("mar")
    assert stores(data) == [(1, "Default", "normal", 4), (2, "2026-02", "normal", 4),
                            (3, "2026-03", "current", 2)]
    assert [store_of(data, w) for w in ("janword0", "janlateword1", "febword0",
                                         "feblateword1", "marword0")] == [1, 1, 2, 2, 3]
    assert [(r["name"], r["previous"], r["mode"]) for r in rollovers(data)] == [
        ("2026-02", "Default", "monthly"), ("2026-03", "2026-02", "monthly")]
