"""What every server of an installation on PostgreSQL must agree on, kept in the database
(the table meta): the id of the master key, and the key that signs tree heads (sealed under
the master key). An installation on SQLite has one server, and keeps both in its data
directory."""

from __future__ import annotations

from mailkeep.core.masterdb.base import Repository

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailkeep.core.masterdb import MasterDB
    from mailkeep.core.masterdb.base import Connection


class InstallationRows(Repository):
    def get(self, key: str) -> str | None:
        assert self.db.postgres
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"installation.{key}",)
                                ).fetchone()
        return None if row is None else str(row[0])

    def settle(self, key: str, value: str) -> str:
        """The value of `key`: `value` if it had none (the first server to ask sets it), else
        the one it has."""
        assert self.db.postgres
        self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                          (f"installation.{key}", value))
        found = self.get(key)
        assert found is not None
        return found

    # -- a migration into PostgreSQL (core/migrate.py) ---------------------------------------
    def holds_data(self) -> bool:
        """Whether the database holds an installation's data (stores, accounts, audit or
        settings)."""
        return any(self.conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                   for t in ("stores", "users", "audit", "settings"))

    def copy_tables(self, source: MasterDB) -> tuple[int, int, list[str]]:
        """Every table the SQLite database `source` and this one both have (but meta), row for
        row, replacing what this one held, in one transaction; the identities go on after
        the highest id ever handed out. (tables, rows, what only `source` has: tables and
        columns left behind)."""
        assert self.db.postgres and not source.postgres
        src = source.conn
        tables = [str(r[0]) for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
            " ORDER BY name")]
        # the highest id each table ever handed out (AUTOINCREMENT), deleted rows' too, and
        # of stores the ids every store ever attached had: ids are never handed out twice
        handed: dict[str, int] = {}
        if src.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
                       ).fetchone():
            handed = {str(n): int(v) for n, v in src.execute(
                "SELECT name, seq FROM sqlite_sequence")}
        if "store_ids" in tables:
            handed["stores"] = max(handed.get("stores", 0), int(src.execute(
                "SELECT coalesce(max(id), 0) FROM store_ids").fetchone()[0]))
        copied = rows = 0
        left: list[str] = []
        with self.tx() as conn:
            mine = {str(r[0]) for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema ="
                " current_schema()")}
            for table in tables:
                if table == "meta":
                    continue
                if table not in mine:
                    left.append(f"table {table}")
                    continue
                columns_here = {str(r[0]) for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema ="
                    " current_schema() AND table_name = ?", (table,))}
                everything = [str(r[1]) for r in src.execute(f'PRAGMA table_info("{table}")')]
                columns = [c for c in everything if c in columns_here]
                left += [f"column {table}.{c}" for c in everything if c not in columns_here]
                names = ", ".join(f'"{c}"' for c in columns)
                conn.execute(f'DELETE FROM "{table}"')
                cursor = src.execute(f'SELECT {names} FROM "{table}"')
                insert = (f'INSERT INTO "{table}" ({names}) VALUES '
                          f'({", ".join("?" * len(columns))})')
                while batch := cursor.fetchmany(1000):
                    conn.executemany(insert, [tuple(r) for r in batch])
                    rows += len(batch)
                if "id" in columns and conn.execute(
                        "SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()[0]:
                    conn.execute("SELECT setval(pg_get_serial_sequence(?, 'id'), greatest((SELECT"
                                 f' coalesce(max(id), 0) FROM "{table}"), ?) + 1, false)',
                                 (table, handed.get(table, 0)))
                copied += 1
        return copied, rows, left

    def meta(self, key: str) -> str | None:
        """A value of the meta table (PostgreSQL)."""
        return meta_value(self.conn, key)

    def set_meta(self, key: str, value: str, replace: bool = True) -> None:
        with self.tx() as conn:
            set_meta_value(conn, key, value, replace)


def meta_value(conn: Connection, key: str) -> str | None:
    """A value of the master database's meta table (PostgreSQL), on any connection to it."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta_value(conn: Connection, key: str, value: str, replace: bool = True) -> None:
    """Set a value of the meta table (`replace` False: only if it has none)."""
    conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO "
                 + ("UPDATE SET value = excluded.value" if replace else "NOTHING"),
                 (key, value))


def lock_document(conn: Connection, key: str) -> None:
    """The advisory lock of one configuration document (core/confdocs.py), until the end of
    the open transaction of `conn`."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
