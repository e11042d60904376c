"""Accounts as stored: the users table, folder privileges and the password generation counter
(core.admin.users has the rules: names, validation, the last administrator)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mailkeep.core.masterdb.base import Repository

_COLUMNS = ("id, user_name, full_name, distinguished_name, authentication, role, privileges, "
            "login_privileges, email_addresses, pop3_user_names")
JSON_COLUMNS = ("privileges", "login_privileges", "email_addresses", "pop3_user_names")


@dataclass(frozen=True)
class AccountRow:
    id: int
    user_name: str
    full_name: str | None
    distinguished_name: str | None
    authentication: str
    role: str | None
    privileges: list[str]
    login_privileges: list[str]
    email_addresses: list[str]
    pop3_user_names: list[str]

    @property
    def is_administrator(self) -> bool:
        return "admin" in self.privileges or self.role == "administrator"


class Accounts(Repository):
    def find(self, name_key: str) -> AccountRow | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM users WHERE name_key = ?",
                                (name_key,)).fetchone()
        if row is None:
            return None
        lists = [json.loads(value) for value in row[6:]]
        return AccountRow(row[0], row[1], row[2], row[3], row[4], row[5], *lists)

    def any(self) -> bool:
        return self.conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def names(self) -> list[tuple[str, str | None, str | None]]:
        """(user name, full name, distinguished name) of every account, by name."""
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT user_name, full_name, distinguished_name FROM users ORDER BY name_key")]

    def insert(self, columns: dict[str, Any]) -> None:
        """A new account; list columns are given as lists."""
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in columns.items()}
        values.setdefault("created_at", int(time.time()))
        self.conn.execute(f"INSERT INTO users ({', '.join(values)}) "
                          f"VALUES ({', '.join('?' for _ in values)})", tuple(values.values()))

    def update(self, account_id: int, **columns: Any) -> None:
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in columns.items()}
        names = ", ".join(f"{name} = ?" for name in values)
        self.conn.execute(f"UPDATE users SET {names} WHERE id = ?",
                          (*values.values(), account_id))

    def name_of(self, account_id: int) -> str | None:
        row = self.conn.execute("SELECT user_name FROM users WHERE id = ?",
                                (account_id,)).fetchone()
        return None if row is None else str(row[0])

    def delete(self, account_id: int) -> None:
        with self.tx() as conn:
            for table in ("user_folder_privileges", "user_mfa", "app_passwords",
                          "directory_accounts"):
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (account_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (account_id,))

    def other_administrators(self, account_id: int) -> int:
        """Accounts other than this one that may log in (privilege login) with the admin
        privilege or the administrator role."""
        held = self._privilege_held
        return int(self.conn.execute(
            f"SELECT COUNT(*) FROM users WHERE id != ? AND (role = 'administrator' OR "
            f"{held('admin')}) AND {held('login')}", (account_id,)).fetchone()[0])

    def other_console_administrators(self, account_id: int) -> int:
        """Accounts other than this one that may log in and hold the console role
        administrator: that role, or no role and the admin privilege."""
        held = self._privilege_held
        return int(self.conn.execute(
            f"SELECT COUNT(*) FROM users WHERE id != ? AND (role = 'administrator' OR (role IS "
            f"NULL AND {held('admin')})) AND {held('login')}", (account_id,)).fetchone()[0])

    def _privilege_held(self, privilege: str) -> str:
        """The condition that users.privileges (a JSON array) holds `privilege` (a word)."""
        elements = ("jsonb_array_elements_text(users.privileges::jsonb) AS e(value)"
                    if self.db.postgres else "json_each(users.privileges)")
        return f"EXISTS (SELECT 1 FROM {elements} WHERE value = '{privilege}')"

    def next_generation(self) -> int:
        """A password generation never handed out before."""
        value: int = self.conn.execute(
            "INSERT INTO user_counters VALUES ('password_generation', 1) ON CONFLICT (name) "
            "DO UPDATE SET value = user_counters.value + 1 RETURNING value").fetchone()[0]
        return value

    # -- folder privileges --------------------------------------------------------------------
    def folder_privileges(self, account_id: int) -> list[tuple[str, list[str]]]:
        return [(r[0], json.loads(r[1])) for r in self.conn.execute(
            "SELECT folder, privileges FROM user_folder_privileges WHERE user_id = ? "
            "ORDER BY folder", (account_id,))]

    def all_folder_privileges(self) -> list[tuple[int, str]]:
        """(account id, folder) of every folder privilege."""
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT user_id, folder FROM user_folder_privileges")]

    def set_folder_privileges(self, account_id: int, folder: str, flags: list[str]) -> None:
        """Replace an account's privileges on a folder; none removes them."""
        with self.tx() as conn:
            conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ? AND folder = ?",
                         (account_id, folder))
            if flags:
                conn.execute("INSERT INTO user_folder_privileges VALUES (?, ?, ?)",
                             (account_id, folder, json.dumps(flags)))

    def move_folder_privilege(self, account_id: int, folder: str, new_folder: str) -> None:
        """The privileges on `folder` go to `new_folder`, replacing any it had."""
        if new_folder == folder:
            return
        with self.tx() as conn:
            if conn.execute("SELECT 1 FROM user_folder_privileges WHERE user_id = ? AND "
                            "folder = ?", (account_id, folder)).fetchone() is None:
                return
            conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ? AND folder = ?",
                         (account_id, new_folder))
            conn.execute("UPDATE user_folder_privileges SET folder = ? WHERE user_id = ? AND "
                         "folder = ?", (new_folder, account_id, folder))

    def clear_folder_privileges(self, account_id: int) -> None:
        self.conn.execute("DELETE FROM user_folder_privileges WHERE user_id = ?", (account_id,))

    # -- credentials --------------------------------------------------------------------------
    def password_hash(self, name_key: str) -> tuple[int, str | None] | None:
        """(account id, stored hash) of an account that logs in with a password of mailkeep's
        (integrated authentication); None for others."""
        row = self.conn.execute("SELECT id, password_hash FROM users WHERE name_key = ? AND "
                                "authentication = 'integrated'", (name_key,)).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def rehash(self, account_id: int, old: str, new: str) -> None:
        """The same password with new hash parameters (its generation stays)."""
        self.conn.execute("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                          (new, account_id, old))

    def has_initial_password(self, name_key: str) -> bool:
        row = self.conn.execute("SELECT initial_password FROM users WHERE name_key = ?",
                                (name_key,)).fetchone()
        return bool(row and row[0])

    def with_initial_password(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT user_name FROM users WHERE initial_password = 1")]

    def generation(self, name_key: str) -> int | None:
        row = self.conn.execute("SELECT password_generation FROM users WHERE name_key = ?",
                                (name_key,)).fetchone()
        return None if row is None else int(row[0])

    def addresses(self) -> list[tuple[str, list[str]]]:
        """(user name, email addresses) of every account (the journal routes by them)."""
        return [(r[0], json.loads(r[1] or "[]")) for r in self.conn.execute(
            "SELECT user_name, email_addresses FROM users")]
