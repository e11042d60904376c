"""Archiving profiles: a saved source (IMAP, POP3, a watched directory, a Maildir) and the
archive it fills; run on demand, by a job, or automatically; each run leaves a worker result.
The property schema per source type is in docs/profiles.md (`mailkeep profile schema`)."""

from __future__ import annotations

import socket
from datetime import datetime, tzinfo
from typing import Any

from mailkeep.core.admin.users import ROLES
from mailkeep.core.admin.zones import zone
from mailkeep.core.errors import InvalidArgument
from mailkeep.core.fields import Field
from mailkeep.functions.call import Call
from mailkeep.functions.registry import function
from mailkeep.notify.events import record_event
from mailkeep.profiles import schema
from mailkeep.profiles.automatic import parse_windows
from mailkeep.profiles.run import Runner
from mailkeep.profiles.store import Profile, Profiles, WorkerResult

# Ids are SQLite integers: a number beyond them names nothing, and SQLite cannot look it up.
MIN_ID, MAX_ID = -(2**63), 2**63 - 1
ID = Field("id", "number", description="The profile's id (GetProfiles).", low=MIN_ID,
           high=MAX_ID)
RAW = Field("raw", "bool", description="GetProfiles: also show each profile's incremental "
            "state. CreateProfile/RunTemporaryProfile: accepted for compatibility; mailkeep "
            "has one property format.", default=False)
PROPERTIES = Field("properties", "json", description="The profile as a JSON object; see "
                 "docs/profiles.md for the fields of each type.", secret_keys=schema.SECRETS)

PROFILE_SHAPE = ('{"id": int, "name": str, "type": "imap"|"pop3"|"directory"|"maildir"|"pst", '
                 '"userName": str, "properties": {...; secrets only as hasPassword/'
                 'hasAccessToken}, "serverSideExecution": {"automatic": bool, '
                 '"automaticPauseBetweenExecutions": int, "automaticMaintenanceWindows": '
                 'str|null}, "running": bool, "lastResult": {"id": int, "result": str, '
                 '"startTime": str, "completeTime": str|null}|null[, "state": {...} with raw]}')
RESULT_SHAPE = ('{"id": int, "result": "succeeded"|"completedWithWarnings"|'
                '"completedWithErrors"|"failed"|"cancelled"|"running", "profileID": int|null, '
                '"profileName": str, "profileType": str, "userName": str, '
                '"executionStartedBy": str, "startTime": str, "completeTime": str|null, '
                '"itemsArchived": int, "itemsDuplicate": int, "itemsSkipped": int, '
                '"itemsFailed": int, "itemsDeleted": int, "bytesRead": int, "error": str|null, '
                '"machineName": str}')


def _profiles(call: Call) -> Profiles:
    return Profiles(call.master, call.data_dir)


def _iso(epoch: float | None, tz: tzinfo | None = None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz).astimezone(tz).isoformat(timespec="seconds")


def _show(profiles: Profiles, prof: Profile, raw: bool = False) -> dict[str, Any]:
    last = profiles.last_result(prof.id)
    out: dict[str, Any] = {
        "id": prof.id, "name": prof.name, "type": prof.type, "userName": prof.user_name,
        "properties": schema.shown(prof.properties, prof.secret_names),
        "serverSideExecution": {"automatic": prof.automatic,
                                "automaticPauseBetweenExecutions": prof.pause_s,
                                "automaticMaintenanceWindows": prof.windows},
        "running": profiles.running(prof.id),
        "lastResult": None if last is None else {
            "id": last["id"], "result": last["result"], "startTime": _iso(last["start"]),
            "completeTime": _iso(last["complete"])}}
    if raw:
        out["state"] = prof.state
    return out


def result_item(row: dict[str, Any], tz: tzinfo | None = None) -> dict[str, Any]:
    return {"id": row["id"], "result": row["result"], "profileID": row["profile_id"],
            "profileName": row["profile_name"], "profileType": row["profile_type"],
            "userName": row["user_name"], "executionStartedBy": row["started_by"],
            "startTime": _iso(row["start"], tz), "completeTime": _iso(row["complete"], tz),
            "itemsArchived": row["archived"], "itemsDuplicate": row["duplicates"],
            "itemsSkipped": row["skipped"], "itemsFailed": row["failed"],
            "itemsDeleted": row["deleted"], "bytesRead": row["bytes"], "error": row["error"],
            "machineName": socket.gethostname()}


@function("GetProfiles", "The archiving profiles, by id, with their properties (passwords "
          "and tokens never: hasPassword/hasAccessToken say whether one is set), automatic "
          "execution settings, whether a run is going on and the last run's result.",
          f"[{PROFILE_SHAPE}]", RAW, changes=False, roles=ROLES)
def get_profiles(call: Call) -> list[dict[str, Any]]:
    profiles = _profiles(call)
    return [_show(profiles, p, bool(call.arg("raw"))) for p in profiles.all()]


@function("GetProfileSchema", "mailkeep extension: the properties a profile of each source "
          "type takes (as CreateProfile checks them): per type, per property its type (str, "
          "int, bool, list; |null if it may be null), default, whether it is required, the "
          "values it may take, and what it means. password and accessToken are write-only.",
          '{"imap"|"pop3"|"directory"|"maildir"|"pst": {"<property>": {"type": str, '
          '"default": any, "required": bool, "values"?: [str], "doc": str}}}', changes=False,
          roles=ROLES)
def get_profile_schema(call: Call) -> dict[str, Any]:
    return schema.schema_doc()


@function("CreateProfile", "Create an archiving profile from its properties (a JSON object: "
          "name, type (imap, pop3, directory, maildir, pst), userName (the archive), targetFolder "
          "and the fields of the type; see docs/profiles.md). Secrets are stored sealed. "
          "Returns the profile as GetProfiles shows it.", PROFILE_SHAPE, PROPERTIES, RAW)
def create_profile(call: Call) -> dict[str, Any]:
    profiles = _profiles(call)
    return _show(profiles, profiles.create(call.arg("properties")))


@function("UpdateProfile", "mailkeep extension: change some properties of a profile (the "
          "fields given; the type cannot change). The password must be given again when host "
          "or login changes; a new host or login also starts the incremental state afresh.",
          PROFILE_SHAPE, ID, PROPERTIES)
def update_profile(call: Call) -> dict[str, Any]:
    profiles = _profiles(call)
    return _show(profiles, profiles.update(int(call.arg("id")), call.arg("properties")))


@function("DeleteProfile", "Delete a profile (refused while it runs). Its worker results are "
          "kept.", "null", ID)
def delete_profile(call: Call) -> None:
    _profiles(call).delete(int(call.arg("id")))


def run(call: Call, prof: Profile | None, props: dict[str, Any], secrets: dict[str, str]
        ) -> dict[str, Any]:
    profiles = _profiles(call)
    runner = Runner(profiles, call.services.writer, call.ctx,
                    on_event=lambda kind, text: record_event(call.master, kind, text))
    res: WorkerResult = runner.run(prof, props, secrets, call.user)
    row = profiles.result(res.id)
    return {**result_item(row), "failures": [{"origin": o, "reason": r}
                                             for o, r in row["failures"][:100]],
            "warnings": row["warnings"]}


@function("RunProfile", "Run a profile now, as a process (progress, log, cancel). Only what "
          "is new since its last run is read. Ends failed when the source cannot be read at "
          "all (or the archive cannot take mail); otherwise succeeds with the worker result, "
          "whose result is succeeded, completedWithWarnings or completedWithErrors (some "
          "messages failed; the first 100 are listed, all in GetWorkerResultReport). Refused "
          "while the profile runs already.",
          RESULT_SHAPE[:-1] + ', "failures": [{"origin": str, "reason": str}], '
          '"warnings": [str]}', ID, long_running=True)
def run_profile(call: Call) -> dict[str, Any]:
    profiles = _profiles(call)
    prof = profiles.get(int(call.arg("id")))
    with profiles.lock(prof):
        prof = profiles.get(prof.id)  # the state as the last run left it
        return run(call, prof, prof.properties, profiles.secrets(prof))


@function("RunTemporaryProfile", "Run a profile given by its properties (as CreateProfile) "
          "without saving it: everything in the source is read (what is archived already "
          "counts as a duplicate). The result is RunProfile's.",
          RESULT_SHAPE[:-1] + ', "failures": [...], "warnings": [str]}', PROPERTIES, RAW,
          long_running=True)
def run_temporary_profile(call: Call) -> dict[str, Any]:
    given = call.arg("properties")
    if isinstance(given, dict) and "name" not in given:
        given = {**given, "name": "Temporary profile"}
    props, secrets = _profiles(call).check(given)
    return run(call, None, props, secrets)


@function("SetProfileServerSideExecution", "Run a profile automatically on the server: again "
          "automaticPauseBetweenExecutions seconds (default 300, at least 10) after each run "
          "ends, except within automaticMaintenanceWindows, e.g. \"Mon-Fri 08:00-18:00; Sun "
          "00:00-24:00\" (days Mon..Sun, a range or one day, or Daily; windows may pass "
          "midnight; in the server's time zone; separated by ';'), when no run starts (one "
          "going on finishes). automatic=false stops automatic runs.", PROFILE_SHAPE, ID,
          Field("automatic", "bool"),
          Field("automaticPauseBetweenExecutions", "number", nullable=True,
              description="Seconds between the end of a run and the next (>= 10)."),
          Field("automaticMaintenanceWindows", "string", nullable=True,
              description="When automatic runs do not start; see the description."))
def set_profile_server_side_execution(call: Call) -> dict[str, Any]:
    pause = call.arg("automaticPauseBetweenExecutions")
    if pause is not None and (int(pause) != pause or not 10 <= pause <= 7 * 86400):
        raise InvalidArgument("automaticPauseBetweenExecutions must be a whole number of "
                              "seconds from 10 to 604800.")
    windows = call.arg("automaticMaintenanceWindows")
    if windows is not None and windows.strip():
        parse_windows(windows)  # a clear error for a bad one
    else:
        windows = None
    profiles = _profiles(call)
    prof = profiles.set_execution(int(call.arg("id")), bool(call.arg("automatic")),
                                  None if pause is None else int(pause), windows)
    return _show(profiles, prof)


def _when(text: str, tz: tzinfo, name: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(f"Invalid value for API argument {name}: a date like "
                              "2026-01-31T00:00:00 is expected.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


@function("GetWorkerResults", "The runs of archiving profiles that started in [fromIncluding, "
          "toExcluding) (dates like 2026-01-31T00:00:00 in timeZoneID: $Local, an IANA or a "
          "Windows zone id), oldest first, optionally of one profile or one user's archive. "
          "Times are shown in that zone. A run still going on has result running and "
          "completeTime null.", f"[{RESULT_SHAPE}]",
          Field("fromIncluding", "string"), Field("toExcluding", "string"),
          Field("timeZoneID", "string"),
          Field("profileID", "number", nullable=True, low=MIN_ID, high=MAX_ID),
          Field("userName", "string", nullable=True), changes=False, roles=ROLES)
def get_worker_results(call: Call) -> list[dict[str, Any]]:
    tz = zone(call.arg("timeZoneID"))
    start = _when(call.arg("fromIncluding"), tz, "fromIncluding")
    end = _when(call.arg("toExcluding"), tz, "toExcluding")
    pid = call.arg("profileID")
    rows = _profiles(call).results(start, end, None if pid is None else int(pid),
                                   call.arg("userName"))
    return [result_item(r, tz) for r in rows]


@function("GetWorkerResultReport", "One run in full: the worker result, every failure with "
          "its reason (up to 1,000), the warnings and the run's log.",
          RESULT_SHAPE[:-1] + ', "failures": [{"origin": str, "reason": str}], "warnings": '
          '[str], "log": str}',
          Field("id", "number", description="The worker result's id.", low=MIN_ID, high=MAX_ID),
          changes=False, roles=ROLES)
def get_worker_result_report(call: Call) -> dict[str, Any]:
    row = _profiles(call).result(int(call.arg("id")))
    return {**result_item(row), "failures": [{"origin": o, "reason": r}
                                             for o, r in row["failures"]],
            "warnings": row["warnings"], "log": row["log"]}
