"""Named kill points of a write, so the fault tests can kill a writer at each step on purpose."""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "VERBATIM_CRASH_AT"  # fault tests: the named write step at which the process kills itself


def crash_point(step: str) -> None:
    """SIGKILL this process at a named step of a write when the fault tests ask for it ($VERBATIM_CRASH_AT), so
    every step's crash is reproducible instead of hoped for at a random moment. A step named `during-...`
    is killed from another thread a moment later, while the step that follows it (the SQLite commit) runs."""
    if os.environ.get(CRASH_ENV) != step:
        return
    if step.startswith("during-"):
        threading.Timer(0.0005, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return
    os.kill(os.getpid(), signal.SIGKILL)
