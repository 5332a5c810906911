"""Running test code concurrently without losing its failures."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence


def run_concurrently(targets: Sequence[Callable[[], object]], *, timeout: float = 60.0) -> None:
    """Run each target in its own thread, released together by a barrier; join and re-raise the first error.

    A plain Thread only prints an exception and lets the test pass; a hung thread fails here instead.
    """
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout)
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(target), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"a thread was still running after {timeout} s")
    if errors:
        raise errors[0]
