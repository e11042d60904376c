"""Background work at a lower CPU priority than the work that answers people.

On two cores an import or a profile run keeps both busy: its worker processes (extraction, at
niceness 10 already, core/extraction.py) and, in the server's own process, the thread that
runs the call. Linux schedules threads, and each has its own niceness: the server runs its
background calls (long-running functions, scheduled jobs) in threads lowered to
BACKGROUND_NICENESS (jobs/engine.py), so that the event loops get the CPU whenever they have
something to do. Lowering is allowed to everyone and raising it again is not, which is why
background calls have threads of their own. The writer thread is not lowered: it answers the
journal's mail servers (lowered, the journal lost about 7% of its rate, bench/smtp_load.py).

The interpreter is the other thing the event loop waits for: a busy thread lets go of it
when another asks, but only after the switch interval, so the server holds it at
SWITCH_INTERVAL_S rather than Python's 5 ms; a fan-out of 1,000 answers asks at every send.
bench/README.md (api_load.py --busy profile) has the figures.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICENESS = 10
SWITCH_INTERVAL_S = 0.001  # the server's (Python's default: 0.005)


def lower_this_thread(niceness: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's CPU priority to `niceness` (Linux; elsewhere the niceness
    would be the whole process's, and nothing is done). Never raises."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError:
        pass


def answer_first() -> None:
    """In the server: a thread waiting for the interpreter (the event loop, with an answer to
    send) gets it from a busy thread within SWITCH_INTERVAL_S rather than Python's 5 ms."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
