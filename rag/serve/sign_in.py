"""The `--auth` check, shared by the chat (Gradio calls `check`) and the MCP server (`verdict` per request)."""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Callable

FAILED_SIGN_IN_DELAY = (0.25, 4.0)  # seconds: the first wrong password's delay, doubling up to the second


class SignIn:
    """The --auth check. A wrong password is answered only after a delay that doubles with each failure in a
    row (a quarter second up to four seconds), and wrong passwords are answered one after another, each at
    least that delay after the one before: guessing runs at a few tries a second at most, however many are
    sent at once. The wait is an `asyncio.sleep` (`check` is what Gradio calls, and awaits): the server's
    event loop and its workers go on serving every page, question and sign-in meanwhile, and a right password
    is answered at once and resets the count."""

    def __init__(self, user: str, password: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.user, self.password = user, password
        self.failures = 0
        self.clock = clock
        self.next_answer = 0.0  # the clock's time before which no further wrong password is answered
        self._lock = threading.Lock()

    def verdict(self, user: str, password: str) -> tuple[bool, float]:
        """Whether `user` and `password` are right, and how many seconds to wait before saying so."""
        right = hmac.compare_digest(f"{user}\0{password}".encode(), f"{self.user}\0{self.password}".encode())
        with self._lock:
            if right:
                self.failures = 0
                return True, 0.0
            self.failures += 1
            first, most = FAILED_SIGN_IN_DELAY
            now = self.clock()
            self.next_answer = max(now, self.next_answer) + min(most, first * 2 ** (self.failures - 1))
            return False, self.next_answer - now

    async def check(self, user: str, password: str) -> bool:
        right, wait = self.verdict(user, password)
        if wait > 0:
            await asyncio.sleep(wait)
        return right
