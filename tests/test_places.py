"""Where an administrator may point mailkeep on disk. A directory profile with
delete-after-archive aimed at the data directory's conf/ would delete the master key and the
connections and archive the key in clear: refused, also when a symbolic link is swapped in
after the profile was saved; a directory holding the data directory is refused too; stores
only in the data directory's stores/; and the setting paths.allowed bounds all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailkeep.core.errors import InvalidArgument
from tests.helpers import call_function, mk_ok


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mk_ok(data, "user", "list")
    mk_ok(data, "call", "CreateConnection", "name=relay", "type=smtp",
          "serverName=smtp.example.org")
    mk_ok(data, "call", "RenewMasterKey")  # there is a master key to lose
    return data


def directory_profile(path: Path, **extra: object) -> str:
    return json.dumps({"name": "drop", "type": "directory", "userName": "admin",
                       "path": str(path), "pattern": "*", "deleteAfterArchive": True, **extra})


def conf_files(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "conf").iterdir())


@pytest.mark.parametrize("where", ["conf", "", ".."])
def test_a_profile_cannot_watch_the_data_directory(data: Path, where: str) -> None:
    before = conf_files(data)
    target = (data / where) if where != ".." else data.parent
    with pytest.raises(InvalidArgument, match="data directory"):
        call_function(data, "CreateProfile", properties=directory_profile(target))
    assert conf_files(data) == before


def test_a_link_swapped_in_after_saving_is_refused_at_the_run(data: Path, tmp_path: Path
                                                             ) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    prof = call_function(data, "CreateProfile", properties=directory_profile(drop))
    drop.rmdir()
    drop.symlink_to(data / "conf")  # what was an inbox is now the keys
    before = conf_files(data)
    with pytest.raises(InvalidArgument, match="inside the data directory"):
        call_function(data, "RunProfile", id=str(prof["id"]))
    assert conf_files(data) == before and any(n.startswith("master.key") for n in before)


def test_stores_only_under_stores_inside_the_data_directory(data: Path, tmp_path: Path
                                                           ) -> None:
    with pytest.raises(InvalidArgument, match="inside the data directory"):
        call_function(data, "CreateStore", name="InConf", databasePath=str(data / "conf" / "s"))
    made = call_function(data, "CreateStore", name="Here",
                         databasePath=str(data / "stores" / "here"))
    assert Path(made["databasePath"]) == (data / "stores" / "here").resolve()
    with pytest.raises(InvalidArgument, match="holds the data directory"):
        call_function(data, "CreateStore", name="Above", databasePath=str(tmp_path))


def test_paths_allowed_bounds_sources_stores_and_backups(data: Path, tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "archive-area", tmp_path / "elsewhere"
    for d in (allowed / "inbox", elsewhere / "inbox"):
        d.mkdir(parents=True)
    call_function(data, "SetSetting", key="paths.allowed", value=str(allowed))
    for name, args in (
            ("CreateProfile", {"properties": directory_profile(elsewhere / "inbox")}),
            ("CreateStore", {"name": "Out", "databasePath": str(elsewhere / "store")}),
            ("CreateBackup", {"path": str(elsewhere / "backup")})):
        with pytest.raises(InvalidArgument, match="paths.allowed"):
            call_function(data, name, **args)
    call_function(data, "CreateProfile", properties=directory_profile(allowed / "inbox"))
    call_function(data, "CreateStore", name="In", databasePath=str(allowed / "store"))
    assert call_function(data, "CreateBackup", path=str(allowed / "backup"))["bytes"] > 0
