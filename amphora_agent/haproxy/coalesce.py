"""Concurrent reload requests share one reload.

A request is satisfied by any reload that *starts* after the request arrived
(it then sees the newest config), so N simultaneous requests cause at most
two reloads instead of N.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._arrived = 0
        self._covered = 0
        self._running = False
        self._outcome: tuple[T | None, BaseException | None] = (None, None)
        self.runs = 0

    def run(self, action: Callable[[], T]) -> T:
        with self._cond:
            self._arrived += 1
            ticket = self._arrived
            while True:
                if self._covered >= ticket:
                    result, error = self._outcome
                    if error is not None:
                        raise error
                    return result  # type: ignore[return-value]
                if not self._running:
                    self._running = True
                    covers = self._arrived
                    break
                self._cond.wait()
        result: T | None = None
        error: BaseException | None = None
        try:
            result = action()
        except BaseException as exc:  # handed to every covered waiter
            error = exc
        with self._cond:
            self.runs += 1
            self._covered = covers
            self._running = False
            self._outcome = (result, error)
            self._cond.notify_all()
        if error is not None:
            raise error
        return result  # type: ignore[return-value]
