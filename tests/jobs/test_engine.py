"""The process engine without HTTP: grace period, long polls, log versions, cancel, retention,
ownership, shutdown, and a thousand waiters."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mailkeep.core.errors import NotFound
from mailkeep.core.priority import BACKGROUND_NICENESS
from mailkeep.jobs import Context, Engine, FinishedRecord, Snapshot, UnknownToken

USER = "admin"
MakeEngine = Callable[..., Engine]


@pytest.fixture
async def make() -> AsyncIterator[MakeEngine]:
    """Engines with test-friendly timings; each is stopped at the end of the test."""
    engines: list[Engine] = []

    def build(**kwargs: Any) -> Engine:
        settings: dict[str, Any] = {"grace_ms": 50, "default_wait_ms": 300, "max_wait_ms": 3000}
        engine = Engine(**(settings | kwargs))
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        await engine.stop()


class Records:
    """An on_finished that remembers what it was told (called from worker threads)."""

    def __init__(self) -> None:
        self.items: list[FinishedRecord] = []
        self.lock = threading.Lock()

    def __call__(self, record: FinishedRecord) -> None:
        with self.lock:
            self.items.append(record)


class Stepper:
    """A function that takes one step (progress, then a log line) each time the test says go,
    and checks for cancellation while it waits."""

    def __init__(self, steps: int = 3) -> None:
        self.steps = steps
        self.go = threading.Semaphore(0)
        self.started = threading.Event()

    def _wait(self, ctx: Context) -> None:
        deadline = time.monotonic() + 5
        while not self.go.acquire(timeout=0.005):
            ctx.check_cancelled()
            if time.monotonic() > deadline:
                raise TimeoutError("the test never let the stepper go on")

    def __call__(self, ctx: Context) -> dict[str, int]:
        self.started.set()
        for step in range(1, self.steps + 1):
            self._wait(ctx)
            ctx.progress(step * 100 // (self.steps + 1), f"step {step}")
            ctx.log(f"{step * 10} messages verified")
        self._wait(ctx)
        return {"verified": self.steps * 10}


class Slow:
    """Sleeps in small steps, reporting as it goes; it begins only once the test lets it go,
    so that it is running for as long as the test looks."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def __call__(self, ctx: Context) -> dict[str, int]:
        if not self.go.wait(30):
            raise TimeoutError("the test never let the function go on")
        for i in range(1, 11):
            ctx.check_cancelled()
            time.sleep(0.02)
            ctx.progress(i * 10, "verifying")
            ctx.log(f"{i * 100} messages verified")
        return {"verified": 1000}


def forever(ctx: Context) -> None:
    while True:
        ctx.check_cancelled()
        time.sleep(0.005)


async def follow(
    engine: Engine, snap: Snapshot, stop: Callable[[Snapshot], bool] | None = None, user: str = USER
) -> tuple[Snapshot, str, list[Snapshot]]:
    """Poll the way clients do, passing the last version seen; collect the answers and the log
    they brought (not counting the log of `snap` itself)."""
    assert snap.token is not None
    log = ""
    seen = [snap]
    done = stop or (lambda s: s.status_code != "running")
    while not done(snap):
        snap = await engine.status(snap.token, user, snap.status_version, 2000)
        log += snap.log_output or ""
        seen.append(snap)
    return snap, log, seen


async def test_quick_function_answers_at_once(make: MakeEngine) -> None:
    records = Records()
    engine = make(on_finished=records)
    await engine.start()
    snap = await engine.invoke("GetServerInfo", lambda ctx: {"version": "1"}, USER)
    assert snap == Snapshot(
        token=None,
        status_version=2,
        status_code="succeeded",
        percent_progress=None,
        status_text=None,
        result={"version": "1"},
        error=None,
        log_output=None,
    )
    assert [(r.name, r.user, r.outcome, r.error) for r in records.items] == [
        ("GetServerInfo", USER, "succeeded", None)
    ]
    assert records.items[0].started <= records.items[0].finished
    assert engine.running() == []


async def test_quick_function_with_log_and_progress(make: MakeEngine) -> None:
    def fn(ctx: Context) -> int:
        ctx.progress(150, "almost")
        ctx.log("one")
        ctx.log("two\n")
        return 7

    snap = await make().invoke("F", fn, USER)
    assert (snap.token, snap.status_version, snap.status_code) == (None, 5, "succeeded")
    assert (snap.percent_progress, snap.status_text, snap.result) == (100, "almost", 7)
    assert snap.log_output == "one\r\ntwo\r\n"


async def test_failures_carry_message_and_class_never_a_traceback(make: MakeEngine) -> None:
    records = Records()
    engine = make(on_finished=records)

    def domain(ctx: Context) -> None:
        raise NotFound("There is no store 3.")

    def bug(ctx: Context) -> None:
        raise ValueError("bad value")

    first = await engine.invoke("A", domain, USER)
    second = await engine.invoke("B", bug, USER)
    assert (first.token, first.status_version, first.status_code) == (None, 2, "failed")
    assert first.error == ("There is no store 3.", "NotFound")
    assert second.error == ("bad value", "ValueError")
    for snap in (first, second):
        assert snap.result is None
        assert snap.error is not None and "Traceback" not in "".join(snap.error)
    assert [(r.outcome, r.error) for r in records.items] == [
        ("failed", "There is no store 3."),
        ("failed", "bad value"),
    ]


async def test_slow_function_runs_with_token_and_progress_climbs(make: MakeEngine) -> None:
    records = Records()
    engine = make(on_finished=records)
    verify = Slow()
    snap = await engine.invoke("VerifyStore", verify, USER)
    assert snap.status_code == "running"
    assert snap.token is not None and re.fullmatch(r"[0-9a-f]{32}", snap.token)
    assert [p.token for p in engine.running()] == [snap.token]
    verify.go.set()
    final, log, seen = await follow(engine, snap)
    percents = [s.percent_progress or 0 for s in seen]
    assert percents == sorted(percents) and percents[-1] == 100
    assert len({s.status_version for s in seen}) == len(seen)  # every answer was news
    log = (snap.log_output or "") + log
    assert log == "".join(f"{i * 100} messages verified\r\n" for i in range(1, 11))
    assert (final.token, final.status_code, final.result) == (
        snap.token,
        "succeeded",
        {"verified": 1000},
    )
    assert final.status_version == 1 + 2 * 10 + 1
    assert [r.outcome for r in records.items] == ["succeeded"]
    assert engine.running() == []
    late = await engine.status(snap.token, USER, final.status_version, 1000)  # still known
    assert (late.status_code, late.log_output) == ("succeeded", None)


async def test_log_output_carries_only_lines_after_the_known_version(make: MakeEngine) -> None:
    engine = make()
    stepper = Stepper()
    snap = await engine.invoke("Steps", stepper, USER)
    assert snap.token and snap.status_version == 1 and snap.log_output is None
    stepper.go.release()
    snap, log, _ = await follow(engine, snap, lambda s: s.status_version >= 3)
    assert (snap.status_version, snap.percent_progress, snap.status_text) == (3, 25, "step 1")
    assert log == "10 messages verified\r\n"
    stepper.go.release()
    snap, log, _ = await follow(engine, snap, lambda s: s.status_version >= 5)
    assert log == "20 messages verified\r\n"
    again = await engine.status(snap.token or "", USER, 3, 0)
    assert again.log_output == "20 messages verified\r\n"
    everything = await engine.status(snap.token or "", USER, -1, 0)
    assert everything.log_output == "10 messages verified\r\n20 messages verified\r\n"
    assert (await engine.status(snap.token or "", USER, 2, 0)).log_output == everything.log_output
    assert (await engine.status(snap.token or "", USER, 5, 0)).log_output is None
    for _ in range(2):
        stepper.go.release()
    final, _, _ = await follow(engine, snap)
    assert (final.status_code, final.result, final.status_version) == (
        "succeeded",
        {"verified": 30},
        8,
    )


async def test_status_waits_only_when_nothing_is_new(make: MakeEngine) -> None:
    engine = make(default_wait_ms=300)
    stepper = Stepper(steps=1)
    snap = await engine.invoke("Steps", stepper, USER)
    token = snap.token or ""

    async def timed(last: int, timeout_ms: int | None) -> tuple[float, Snapshot]:
        began = time.monotonic()
        answer = await engine.status(token, USER, last, timeout_ms)
        return time.monotonic() - began, answer

    took, answer = await timed(0, 5000)  # older than the current version: at once
    assert took < 0.2 and answer.status_version == 1
    took, answer = await timed(-1, 5000)
    assert took < 0.2 and answer.status_version == 1
    took, answer = await timed(1, 250)  # current: waits for the timeout
    assert took >= 0.2 and (answer.status_version, answer.status_code) == (1, "running")
    took, _ = await timed(1, None)  # absent: the default
    assert took >= 0.25
    took, _ = await timed(1, -1)  # -1 is what many clients send for "default"
    assert took >= 0.25
    took, _ = await timed(1, -20)
    assert took < 0.2
    stepper.go.release()
    took, answer = await timed(1, 5000)  # a change ends the wait
    assert took < 1 and answer.status_version >= 2


def test_timeouts_are_capped() -> None:
    engine = Engine(default_wait_ms=5000, max_wait_ms=60000)
    assert engine.wait_seconds(None) == engine.wait_seconds(-1) == 5.0
    assert engine.wait_seconds(10**9) == 60.0
    assert engine.wait_seconds(-7) == engine.wait_seconds(0) == 0.0


async def test_cancel_ends_the_process_cancelled(make: MakeEngine) -> None:
    records = Records()
    engine = make(on_finished=records)
    snap = await engine.invoke("Forever", forever, USER)
    token = snap.token or ""
    answer = engine.cancel(token, USER)
    assert (answer.token, answer.log_output) == (token, None)
    final, _, _ = await follow(engine, answer)
    assert (final.status_code, final.error, final.result, final.token) == (
        "cancelled",
        None,
        None,
        token,
    )
    assert [(r.outcome, r.token) for r in records.items] == [("cancelled", token)]
    assert engine.cancel(token, USER).status_code == "cancelled"  # harmless afterwards
    assert len(records.items) == 1


async def test_a_function_that_ignores_cancel_succeeds(make: MakeEngine) -> None:
    stepper = Stepper(steps=0)
    engine = make()

    def stubborn(ctx: Context) -> str:
        stepper.started.set()
        stepper.go.acquire(timeout=5)
        return "done"

    snap = await engine.invoke("Stubborn", stubborn, USER)
    engine.cancel(snap.token or "", USER)
    stepper.go.release()
    final, _, _ = await follow(engine, snap)
    assert (final.status_code, final.result) == ("succeeded", "done")


async def test_a_queued_process_cancelled_before_it_starts_never_runs(make: MakeEngine) -> None:
    engine = make(max_workers=1)
    first, second = Stepper(steps=0), Stepper(steps=0)
    a = await engine.invoke("A", first, USER)
    b = await engine.invoke("B", second, USER)
    assert a.status_code == b.status_code == "running"
    assert {p.name for p in engine.running()} == {"A", "B"}
    engine.cancel(b.token or "", USER)
    first.go.release()
    final_b, _, _ = await follow(engine, b)
    assert final_b.status_code == "cancelled" and not second.started.is_set()
    assert (await follow(engine, a))[0].status_code == "succeeded"


async def test_tokens_belong_to_their_user(make: MakeEngine) -> None:
    engine = make()
    stepper = Stepper(steps=0)
    snap = await engine.invoke("Steps", stepper, USER)
    token = snap.token or ""
    with pytest.raises(UnknownToken):
        await engine.status(token, "mallory", -1, 0)
    with pytest.raises(UnknownToken):
        engine.cancel(token, "mallory")
    with pytest.raises(UnknownToken):
        await engine.status("0" * 32, USER, -1, 0)
    with pytest.raises(UnknownToken):
        engine.cancel("0" * 32, USER)
    assert (await engine.status(token, USER, -1, 0)).status_code == "running"
    stepper.go.release()
    assert (await follow(engine, snap))[0].status_code == "succeeded"


async def test_finished_processes_are_forgotten_after_retention(make: MakeEngine) -> None:
    engine = make(retention_s=0.1)
    stepper = Stepper(steps=0)
    snap = await engine.invoke("Steps", stepper, USER)
    stepper.go.release()
    final, _, _ = await follow(engine, snap)
    retention_over = time.monotonic() + engine.retention_s  # it finished before this
    assert (await engine.status(final.token or "", USER, -1, 0)).status_code == "succeeded"
    while time.monotonic() <= retention_over:  # until the retention has run out
        await asyncio.sleep(retention_over - time.monotonic() + 0.001)
    with pytest.raises(UnknownToken):
        await engine.status(final.token or "", USER, -1, 0)


async def test_an_on_finished_error_is_logged_and_harmless(
    make: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: FinishedRecord) -> None:
        raise RuntimeError("history database is gone")

    engine = make(on_finished=broken)
    with caplog.at_level(logging.ERROR, logger="mailkeep.jobs"):
        snap = await engine.invoke("F", lambda ctx: 1, USER)
    assert (snap.status_code, snap.result) == ("succeeded", 1)
    assert "on_finished failed" in caplog.text
    assert (await engine.invoke("G", lambda ctx: 2, USER)).result == 2


async def test_a_thousand_long_polls_wake_together(make: MakeEngine) -> None:
    engine = make(max_wait_ms=20000)
    go = threading.Semaphore(0)

    def one_change(ctx: Context) -> None:
        go.acquire(timeout=5)
        ctx.progress(50)
        go.acquire(timeout=5)

    snap = await engine.invoke("OneChange", one_change, USER)
    token = snap.token or ""
    started = 0

    async def poll() -> Snapshot:
        nonlocal started
        started += 1  # and on into status(), up to its wait, before any other task runs
        return await engine.status(token, USER, 1, 10000)

    polls = [asyncio.create_task(poll()) for _ in range(1000)]
    while started < len(polls):  # until every poll waits
        await asyncio.sleep(0)
    assert not any(p.done() for p in polls)
    began = time.monotonic()
    go.release()  # one progress() call
    answers = await asyncio.wait_for(asyncio.gather(*polls), timeout=5)
    elapsed = time.monotonic() - began
    print(f"1000 long polls answered {elapsed * 1000:.1f} ms after the change")
    assert len(answers) == 1000
    assert {a.status_version for a in answers} == {2}
    assert {a.percent_progress for a in answers} == {50}
    go.release()
    assert (await follow(engine, snap))[0].status_code == "succeeded"


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="a thread's own CPU priority is Linux's (core/priority.py)")
async def test_background_calls_run_at_a_lower_cpu_priority(make: MakeEngine) -> None:
    """A long-running call (background) works in a thread the scheduler ranks below the
    threads that answer people; a quick call is not lowered, before or after one."""
    engine = make()
    await engine.start()

    def niceness(ctx: Context) -> dict[str, int]:
        return {"nice": os.getpriority(os.PRIO_PROCESS, threading.get_native_id())}

    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert ours < BACKGROUND_NICENESS
    quick = await engine.invoke("GetServerInfo", niceness, USER)
    background = await engine.invoke("VerifyStores", niceness, USER, background=True)
    again = await engine.invoke("GetServerInfo", niceness, USER)
    assert quick.result == again.result == {"nice": ours}
    assert background.result == {"nice": BACKGROUND_NICENESS}
    held = Stepper(1)
    snap = await engine.invoke("Held", held, USER, background=True)
    assert snap.token is not None  # running in the background pool while the next answers
    assert (await engine.invoke("GetServerInfo", niceness, USER)).result == {"nice": ours}
    held.go.release()


async def test_stop_cancels_running_processes_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    records = Records()
    engine = Engine(grace_ms=20, max_workers=2, on_finished=records)
    await engine.start()
    running = await engine.invoke("Forever", forever, USER)
    queued = [await engine.invoke(f"Q{i}", forever, USER) for i in range(2)]
    assert all(s.status_code == "running" for s in [running, *queued])
    began = time.monotonic()
    await engine.stop()
    assert time.monotonic() - began < 2
    outcomes = {r.name: r.outcome for r in records.items}
    assert outcomes == {"Forever": "cancelled", "Q0": "cancelled", "Q1": "cancelled"}
    final = await engine.status(running.token or "", USER, -1, 0)
    assert final.status_code == "cancelled"
    leaked = [t for t in threading.enumerate() if t not in before and not t.daemon]
    assert leaked == []
    with pytest.raises(RuntimeError):
        await engine.invoke("Late", lambda ctx: None, USER)
    await engine.stop()  # twice is harmless
