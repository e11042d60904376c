"""A job's action: a catalog function call as `mailkeep call` takes it (`RunProfile id=3`),
checked when the job is made and again at each run; and how a run of the job calls it, as its
owner, through the one invoke path."""

from __future__ import annotations

import re
import shlex
from typing import Any

from mailkeep.core.errors import InvalidArgument
from mailkeep.core.masterdb import Job
from mailkeep.functions.call import Caller
from mailkeep.functions.invoke import Invoker
from mailkeep.functions.registry import REGISTRY, ApiArgumentError, Function, parse_args
from mailkeep.jobs.process import Progress
from mailkeep.jobs.runs import RunAction

# Functions an action must not call: a job managing jobs could start loops.
MANAGING = frozenset({"CreateJob", "RenameJob", "SetJobEnabled", "SetJobSchedule",
                      "RunJobAsync", "CancelJobAsync", "DeleteJob"})


FOUR_EYES = ("RequestMessageDeletion", "ApproveMessageDeletion", "RejectMessageDeletion")


def parse_action(action: str) -> tuple[Function, dict[str, str]]:
    """The function and arguments (as text) of an action such as `RunProfile id=3`
    (shell-like quoting; `--name=value` too), checked as the API checks a call;
    InvalidArgument if not."""
    try:
        words = shlex.split(action)
    except ValueError as exc:
        raise InvalidArgument(f"Invalid action: {exc} (quote a value with spaces as "
                              'name="a value").') from None
    if not words:
        raise InvalidArgument("The action is empty: give a function call such as VerifyStores "
                              "or RunProfile id=3.")
    fn = REGISTRY.get(words[0])
    if fn is None:
        raise InvalidArgument(f"Unknown function {words[0]} in the action (get-metadata lists "
                              "the functions).")
    if fn.name in MANAGING:
        raise InvalidArgument(f"A job cannot call {fn.name}: jobs do not manage jobs.")
    if fn.name in FOUR_EYES:
        raise InvalidArgument(f"A job cannot call {fn.name}: a deletion is asked for and "
                              "decided by people, each in person.")
    known = {a.name.lower(): a for a in fn.args}
    form: dict[str, str] = {}
    for word in words[1:]:
        text = word[2:] if word.startswith("--") else word
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"Invalid action argument '{word}': use name=value.")
        arg = known.get(name.lower())
        if arg is not None and arg.secret:
            raise InvalidArgument(f"The action cannot pass {arg.name} of {fn.name}: it is "
                                  "secret, and a job's action is stored and shown in clear.")
        if name.lower() in {n.lower() for n in form}:
            raise InvalidArgument(f"The action passes argument {name} twice.")
        form[name] = value
    try:
        args = parse_args(fn, form)
    except ApiArgumentError as exc:
        raise InvalidArgument(f"Invalid action for {fn.name}: {exc.message}") from None
    for arg in fn.args:
        given = args.get(arg.name)
        if arg.mask is not None and given is not None and arg.shown(given) != given:
            raise InvalidArgument(f"The action cannot pass what {arg.name} of {fn.name} keeps "
                                  "secret: a job's action is stored and shown in clear.")
        if arg.secret_keys and isinstance(given, dict) and any(
                given.get(k) for k in arg.secret_keys):
            raise InvalidArgument(f"The action cannot pass {', '.join(arg.secret_keys)} in "
                                  f"{arg.name} of {fn.name}: a job's action is stored and shown "
                                  "in clear (save a profile and run it with RunProfile).")
    return fn, form


SECRET_NAME = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def shown_action(action: str) -> str:
    """An action as the audit log may keep it: the values of secret arguments masked. An
    action carrying one is refused, and the refusal is audited."""
    try:
        words = shlex.split(action)
    except ValueError:  # unbalanced quotes: what it holds cannot be told apart
        return "***"
    if not words:
        return action
    fn = REGISTRY.get(words[0])
    secret = {a.name.lower() for a in fn.args if a.secret or a.secret_keys} if fn else set()
    masked = {a.name.lower(): a for a in fn.args if a.mask is not None} if fn else {}
    shown = [words[0]]
    for word in words[1:]:
        name, sep, value = (word[2:] if word.startswith("--") else word).partition("=")
        hidden = sep and (name.lower() in secret or SECRET_NAME.search(name))
        if sep and not hidden and name.lower() in masked:  # e.g. a password inside JSON
            try:
                given = masked[name.lower()].parse(value)
                hidden = masked[name.lower()].shown(given) != given
            except Exception:  # noqa: BLE001  (what cannot be read cannot be told apart)
                hidden = True
        shown.append(f"{name}=***" if hidden else word)
    return shlex.join(shown)


def job_runner(invoker: Invoker) -> RunAction:
    """What a job's run calls: its action, as its owner (rights checked now, at the run),
    audited as job:<name>."""

    def run(job: Job, ctx: Progress) -> Any:
        fn, form = parse_action(job.action)
        return invoker.call(fn, Caller(job.owner, "job", job=job.name), form=form, ctx=ctx)

    return run
