"""The backfill orchestrator's entry points: a run, and the manual ``status`` / ``retry`` / ``reset``.

Everything else lives by concern: ``settings`` (the tunables), ``steps`` (running one step into a
StepOutcome), ``progress`` (pure transitions, incl. ``apply_outcome``), ``run_loop`` (one bounded run)
and ``progress_store`` (compare-and-swap in the object store). A progress file that cannot be read is a
StoreError naming the file and the field, raised before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

from stockpipe.backfill import progress as prog
from stockpipe.backfill.events import ActionEvent, Event, RunEvent, parse_event
from stockpipe.backfill.invoker import Invoker
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.run_loop import RunLoop
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.steps import Listener, MetadataSource, StepOutcome, StepRunner, TiingoMetadataSource
from stockpipe.logs import get_logger
from stockpipe.objectstore import ObjectStore
from stockpipe.universe import load_universe

# Re-exported: the names callers imported from here before the split.
__all__ = [
    "BackfillSettings",
    "Listener",
    "MetadataSource",
    "Orchestrator",
    "StepOutcome",
    "TiingoMetadataSource",
    "utc_now",
]

log = get_logger("backfill")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    def __init__(
        self,
        store: ObjectStore,
        invoker: Invoker,
        metadata: MetadataSource,
        settings: BackfillSettings | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        today: Callable[[], date] | None = None,
        listener: Listener | None = None,
        progress_store: ProgressStore | None = None,
        function_name: str | None = None,
        owner_gone: Callable[[str], bool] | None = None,
    ) -> None:
        """``owner_gone``: for local runs only (``owners.owner_process_gone``), drops leases of dead runs."""
        self.store = store
        self.invoker = invoker
        self.metadata = metadata
        self.settings = settings or BackfillSettings()
        self.clock = clock
        self.today = today or (lambda: clock().date())
        self.listener = listener
        self.progress = progress_store or ProgressStore(store)
        self.function_name = function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.owner_gone = owner_gone

    def handle(self, event: Any, *, remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
        """Dispatch a raw or parsed event; ValueError (nothing changed) for a malformed one."""
        parsed: Event = event if isinstance(event, RunEvent | ActionEvent) else parse_event(event)
        if isinstance(parsed, RunEvent):
            return self.run(parsed.tickers, remaining_ms=remaining_ms)
        if parsed.action == "status":
            return self.status()
        if parsed.action == "retry":
            return self.retry(parsed.tickers)
        return self.reset(parsed.tickers)

    def status(self) -> dict[str, Any]:
        """Per ticker: done / in_progress / parked / pending and chunks left (costs no request).

        Shown as the next run will see it: a start date moved earlier already counts (nothing is written).
        """
        try:
            universe = load_universe(self.store)
        except ValueError:
            universe = []
        progress = prog.extend_history(
            self.progress.load(), universe, backfill_start=self.settings.start_date, now=self.clock()
        )
        summary = prog.summarize(progress, universe, chunk_months=self.settings.chunk_months)
        return {"action": "status", **summary}

    def retry(self, tickers: Iterable[str]) -> dict[str, Any]:
        """Un-park tickers (attempts from zero); the next run picks them up."""
        names = list(tickers)
        before = self.progress.load()
        now = self.clock()
        self.progress.update(lambda p: prog.retry(p, names, now=now))
        unknown = [t for t in names if before.get(t) is None]
        log.info("backfill retry", extra={"tickers": names, "unknown": unknown})
        return {"action": "retry", "tickers": [t for t in names if t not in unknown], "unknown": unknown}

    def reset(self, tickers: Iterable[str]) -> dict[str, Any]:
        """Forget the tickers' progress: the next run reads metadata again and starts over."""
        names = list(tickers)
        before = self.progress.load()
        self.progress.update(lambda p: prog.reset(p, names))
        unknown = [t for t in names if before.get(t) is None]
        log.info("backfill reset", extra={"tickers": names, "unknown": unknown})
        return {"action": "reset", "tickers": [t for t in names if t not in unknown], "unknown": unknown}

    def run(
        self,
        tickers: Iterable[str] | None = None,
        *,
        remaining_ms: Callable[[], int] | None = None,
        budget: int | None = None,
    ) -> dict[str, Any]:
        """One bounded run; returns what it did and what is left (the rest is for the next run).

        ValueError, before anything is read or written, for a start date after today.
        """
        self.settings.check_start_date(self.today())
        loop = RunLoop(
            progress=self.progress,
            execute=StepRunner(
                self.invoker, self.metadata, requests_per_step=self.settings.requests_per_step
            ),
            settings=self.settings,
            universe=list(tickers) if tickers else load_universe(self.store),
            clock=self.clock,
            today=self.today,
            budget=budget,
            remaining_ms=remaining_ms,
            listener=self.listener,
            owner_gone=self.owner_gone,
            function_name=self.function_name,
        )
        return loop.run()
