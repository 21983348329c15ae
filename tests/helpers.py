"""Small test helpers shared by unit and integration tests."""

from __future__ import annotations

import time


class FakeClock:
    """A clock the test moves by hand: ``clock.advance(seconds)``."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
