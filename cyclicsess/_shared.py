"""One run of a coroutine at a time, shared by every caller on the running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["SharedRun"]

T = TypeVar("T")


class SharedRun(Generic[T]):
    """Starts ``work`` once for all callers, again only after the last run ended.

    Callers await ``asyncio.shield(run.task())`` so that one caller giving up
    does not cancel the run for the others. A run belongs to the loop it was
    started on; on another loop (a new ``asyncio.run``) a fresh run starts.

    Args:
        work: makes the coroutine of one run.
    """

    def __init__(self, work: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._work = work
        self._task: asyncio.Task[T] | None = None

    def task(self) -> asyncio.Task[T]:
        """The run in progress on the running loop, or a new one."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._task = loop.create_task(self._work())
            task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[T]) -> None:
        if self._task is task:
            self._task = None  # hold no finished run (nor what it refers to)
        if not task.cancelled():
            task.exception()  # its callers got the failure, or nobody waited for it
