"""Who calls a function or does a thing the audit log records, through which interface: the
Caller that every interface (API, console, command line, jobs) hands the functions, in a
module of its own so that a command line names its caller without importing the function
catalog (cli/common.py)."""

from __future__ import annotations

from dataclasses import dataclass

VIAS = ("api", "mcapi", "cli", "job", "automatic")


@dataclass(frozen=True)
class Caller:
    """Who calls, through which interface. `user` is an account (api, mcapi, job: the job's
    owner), the account of the shell (cli), or the server itself (automatic)."""

    user: str
    via: str
    address: str = ""
    job: str | None = None  # the job's name, when via is "job"
    session: str = ""  # mcapi: the digest of the console session calling (links end with it)
    agent: str = ""  # the client's User-Agent (printable ASCII, shortened), for the audit log

    @property
    def actor(self) -> str:
        """How the audit log names the caller: api:alice, cli:root, job:nightly, ..."""
        return f"job:{self.job}" if self.via == "job" else f"{self.via}:{self.user}"
