"""The backfill orchestrator's entry points: a run, and the manual ``status`` / ``retry`` / ``reset``.

Everything else lives by concern: ``settings`` (the tunables), ``steps`` (running one step into a
StepOutcome), ``progress`` / ``outcomes`` (pure transitions), ``run_loop`` (one bounded run),
``progress_store`` / ``index_store`` (compare-and-swap in the object store), ``migration`` (the index
brought up to date, the one-file progress of earlier versions converted), ``status`` and ``answers``
(the answers' shapes). A progress object that cannot be read is a StoreError naming the object and
the field, raised before anything is written; a ticker's own object blocks only that ticker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, Literal

from stockpipe.backfill import progress as prog
from stockpipe.backfill.answers import ActionAnswer, RunSummary, StatusAnswer
from stockpipe.backfill.events import ActionEvent, Event, RunEvent, parse_event
from stockpipe.backfill.invoker import Invoker
from stockpipe.backfill.migration import check_size, prepare
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.run_loop import RunLoop
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.status import status_answer
from stockpipe.backfill.steps import Listener, MetadataSource, StepOutcome, StepRunner, TiingoMetadataSource
from stockpipe.logs import get_logger
from stockpipe.objectstore import ObjectStore

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
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        """For local runs only: ``owner_gone`` (``owners.owner_process_gone``) drops leases of dead runs;
        ``stop_requested`` ends a run after its in-flight steps (Ctrl-C; see ``run_loop``)."""
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
        self.stop_requested = stop_requested

    def handle(
        self, event: Any, *, remaining_ms: Callable[[], int] | None = None
    ) -> RunSummary | StatusAnswer | ActionAnswer:
        """Dispatch a raw or parsed event; ValueError (nothing changed) for a malformed one."""
        parsed: Event = event if isinstance(event, RunEvent | ActionEvent) else parse_event(event)
        if isinstance(parsed, RunEvent):
            return self.run(parsed.tickers, remaining_ms=remaining_ms)
        if parsed.action == "status":
            return self.status(parsed)
        if parsed.action == "retry":
            return self.retry(parsed.tickers)
        return self.reset(parsed.tickers)

    def status(self, event: ActionEvent | None = None) -> StatusAnswer:
        """Counts per state and chunks left (exact), details one page at a time (costs no request).

        Shown as the next run will see it: a start date moved earlier already counts. Brings the index
        up to date first when the universe or the settings changed (never a ticker's progress).
        """
        root = prepare(self.progress, self.settings, self.clock(), strict=False)
        return status_answer(self.progress, root, event or ActionEvent("status"), self.settings, self.clock())

    def retry(self, tickers: Iterable[str]) -> ActionAnswer:
        """Un-park tickers (attempts from zero); the next run picks them up. Idempotent: re-send on error."""
        return self._each("retry", tickers, lambda p, names, now: prog.retry(p, names, now=now))

    def reset(self, tickers: Iterable[str]) -> ActionAnswer:
        """Forget the tickers' progress: the next run plans them again and starts over."""
        return self._each("reset", tickers, lambda p, names, now: prog.reset(p, names))

    def _each(
        self,
        action: Literal["retry", "reset"],
        tickers: Iterable[str],
        change: Callable[[prog.Progress, list[str], datetime], prog.Progress],
    ) -> ActionAnswer:
        names = list(tickers)
        check_size(names, f"'{action}'")
        prepare(self.progress, self.settings, self.clock(), strict=False)
        cm = self.settings.chunk_months
        unknown = []
        for name in names:  # an unreadable object stops here (StoreError naming it), nothing written
            record, rev = self.progress.read(name)
            if record is None:
                unknown.append(name)
                continue
            record, rev = self.progress.update(name, lambda p, t=name: change(p, [t], self.clock()))
            self.progress.index.record(name, record, rev, cm)  # also when nothing changed: re-sending repairs
        log.info(f"backfill {action}", extra={"tickers": names, "unknown": unknown})
        return ActionAnswer(action=action, tickers=[t for t in names if t not in unknown], unknown=unknown)

    def run(
        self,
        tickers: Iterable[str] | None = None,
        *,
        remaining_ms: Callable[[], int] | None = None,
        budget: int | None = None,
    ) -> RunSummary:
        """One bounded run; returns what it did and what is left (the rest is for the next run).

        ValueError, before anything is read or written, for a start date after today or more than
        MAX_TICKERS tickers.
        """
        self.settings.check_start_date(self.today())
        names = list(dict.fromkeys(tickers)) if tickers else None
        if names is not None:
            check_size(names, "the event's 'tickers'")
        root = prepare(self.progress, self.settings, self.clock(), strict=names is None)
        candidates = (
            iter(names)
            if names is not None
            else self.progress.index.candidates(root, self.settings.chunk_months)
        )
        loop = RunLoop(
            progress=self.progress,
            execute=StepRunner(
                self.invoker, self.metadata, requests_per_step=self.settings.requests_per_step
            ),
            settings=self.settings,
            tickers=names,
            candidates=candidates,
            clock=self.clock,
            today=self.today,
            budget=budget,
            remaining_ms=remaining_ms,
            listener=self.listener,
            owner_gone=self.owner_gone,
            stop_requested=self.stop_requested,
            function_name=self.function_name,
        )
        return loop.run()
