"""One call on a thread while the task goes on with something else: a few milliseconds of waiting
(on the Docker daemon, on the cache database) overlapped with another wait."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_background(call: Callable[[], T], name: str) -> Callable[[], T]:
    """``call`` started on a thread now; the function returned waits for its result, or raises its
    error where it is called."""
    results: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            results.append((True, call()))
        except BaseException as exc:  # handed to the caller, which raises it where it waits
            results.append((False, exc))

    thread = threading.Thread(target=run, name=f"valohai-reuse-{name}", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = results[0]
        if not ok:
            raise value
        return value

    return result
