"""Run locks of an installation on PostgreSQL (core/admin/locks.py): a job or a profile runs
only while some server's connection holds the database's advisory lock of its name, so that it
runs once in the whole installation; a server that dies loses its locks with its connection."""

from __future__ import annotations

from mailkeep.core.pgconn import Connection

RUN_LOCK = 0x6D6C  # the first key of a run lock (the second: the hash of its name)


def try_lock(url: str, name: str) -> Connection | None:
    """A connection that holds the run lock of `name`; None when another holds it."""
    conn = Connection(url, name=f"mailkeep run lock {name}")
    try:
        if conn.execute("SELECT pg_try_advisory_lock(?, hashtext(?))", (RUN_LOCK, name)
                        ).fetchone()[0]:
            return conn
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def is_held(url: str, name: str) -> bool:
    conn = Connection(url)
    try:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                            " AND classid = ? AND objid = hashtext(?)::oid AND granted)",
                            (RUN_LOCK, name)).fetchone()[0] is True
    finally:
        conn.close()
