"""What a local run shows, through rich: messages and live progress on stderr, tables on stdout.

On a terminal: one progress line redrawn in place and sized to the terminal (bar, chunks, tickers,
elapsed, rate, ETA), colours, tables that fit the width and wrap words, never cut them. Piped or
redirected: no colours, no control codes, one plain ``key: value`` line per ten steps (and per failure),
and tables as plain padded text, so the output can be parsed and grepped. ``render_table`` is the one
table renderer of the package.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from rich import box
from rich.console import Console as RichConsole
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from stockpipe.backfill import progress as prog
from stockpipe.backfill.orchestrator import StepOutcome

PLAIN_EVERY_STEPS = 10


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
) -> str:
    """Plain text: columns padded to their widest cell, the last one free, a rule under the header.

    ``right`` holds the indexes of right-aligned (numeric) columns.
    """
    lines = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    out = []
    for index, row in enumerate(lines):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        out.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in [*widths, len(header[-1])]))
    return "\n".join(out)


class Console:
    """stderr for the user (messages, progress), stdout for results (tables, JSON)."""

    def __init__(self, err: TextIO, out: TextIO) -> None:
        self.err = RichConsole(file=err, highlight=False, soft_wrap=False)
        self.out_stream = out
        self.out = RichConsole(file=out, highlight=False)
        self.tty = self.err.is_terminal
        self._live: Progress | None = None

    def line(self, text: str, style: str | None = None) -> None:
        """A message on stderr: wrapped at words on a terminal, one unbroken line otherwise."""
        target = self._live.console if self._live is not None else self.err
        if self.tty:
            target.print(Text(text, style=style or ""))
        else:
            self.err.file.write(text + "\n")
            self.err.file.flush()

    def warn(self, text: str) -> None:
        self.line(text, "bold yellow")

    def table(
        self, header: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
    ) -> None:
        """A table on stdout: rich (fits the terminal) on a terminal, ``render_table`` text otherwise.

        On a terminal the last column (free text, e.g. notes) is printed under the table, wrapped at
        words, so the columns keep their width at 80 characters.
        """
        if not self.out.is_terminal:
            self.out_stream.write(render_table(header, rows, right=right) + "\n")
            self.out_stream.flush()
            return
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for index, name in enumerate(header[:-1]):
            table.add_column(name, justify="right" if index in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*row[:-1])
        self.out.print(table)
        for row in rows:
            if row[-1]:
                self.out.print(Text.assemble((row[0], "bold"), f" {header[-1]}: {row[-1]}"))

    def command(self, text: str) -> None:
        """A command to copy: on its own line, indented, never broken by inserted newlines."""
        target = self._live.console if self._live is not None else self.err
        if target.is_terminal:
            target.print(Text("  " + text, style="bold"), soft_wrap=True)
        else:
            target.file.write("  " + text + "\n")
            target.file.flush()

    def text(self, text: str = "") -> None:
        """Plain text on stdout (results: the query to paste, the next command)."""
        self.out_stream.write(text + "\n")
        self.out_stream.flush()

    @contextmanager
    def progress(self, tickers: list[str], chunk_months: int) -> Iterator[BackfillProgress]:
        """Live progress for the duration of the block (a redrawn line on a terminal)."""
        display = BackfillProgress(self, tickers, chunk_months)
        if not self.tty:
            yield display
            return
        live = Progress(
            TextColumn("{task.description}", table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=6)),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[tickers]}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            _RateColumn(table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
            console=self.err,
            refresh_per_second=4,
            expand=True,
        )
        display.attach(live)
        self._live = live
        try:
            with live:
                yield display
        finally:
            self._live = None


class _RateColumn(ProgressColumn):
    """Chunks per second over rich's sliding window; the run's average until the window has samples
    (a request covers a whole ticker's chunks, so a short run may never fill the window)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed and task.completed:
            speed = task.completed / task.elapsed
        return Text("-/s" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")


class BackfillProgress:
    """The orchestrator's listener: chunks done of chunks known, tickers finished, the current step."""

    def __init__(
        self,
        console: Console,
        tickers: list[str],
        chunk_months: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.tickers = tickers
        self.chunk_months = chunk_months
        self.clock = clock
        self.started = clock()
        self.steps = 0
        self.first_done: int | None = None
        self._live: Progress | None = None
        self._task = None
        self.counts = (0, 0, 0, len(tickers))  # chunks done, chunks known, tickers finished, unplanned

    def attach(self, live: Progress) -> None:
        self._live = live
        self._task = live.add_task("starting", total=None, tickers="")

    def __call__(self, outcome: StepOutcome, snapshot: prog.Progress) -> None:
        self.steps += 1
        self.update(snapshot, outcome)
        if outcome.ok and self.steps % PLAIN_EVERY_STEPS:
            return
        if not self.console.tty:
            self.console.line(self.plain_line(outcome))

    def update(self, snapshot: prog.Progress, outcome: StepOutcome | None = None) -> None:
        done = known = finished = unplanned = 0
        for ticker in self.tickers:
            record = snapshot.get(ticker)
            left = prog.chunks_left(record, self.chunk_months)
            if record is None or left is None:
                unplanned += 1
                continue
            done += record.chunks_done
            known += record.chunks_done + (0 if record.parked else left)
            finished += record.done or record.parked
        if self.first_done is None:
            self.first_done = done
        self.counts = (done, known, finished, unplanned)
        if self._live is not None and self._task is not None:
            tickers = f"{finished}/{len(self.tickers)} tickers"
            self._live.update(
                self._task,
                completed=done,
                total=known or None,
                description=self.step_text(outcome),
                tickers=tickers,
            )
        if outcome is not None and not outcome.ok and self.console.tty:
            self.console.line(self.failure_text(outcome), "red")

    def finish(self, snapshot: prog.Progress) -> None:
        """The final state (plain output: one last line, so the log ends with the totals)."""
        self.update(snapshot)
        if not self.console.tty:
            self.console.line(self.plain_line())

    def waiting(self, text: str) -> None:
        """Show a wait (quota window, another run's lease) in place of the current step."""
        if self._live is not None and self._task is not None:
            self._live.update(self._task, description=text)

    def step_text(self, outcome: StepOutcome | None) -> str:
        if outcome is None:
            return "backfill done" if self.counts[1] and self.counts[0] == self.counts[1] else "backfill"
        work = outcome.work
        return f"{work.ticker} {work.start if work.kind == 'chunk' else 'metadata'}"

    def failure_text(self, outcome: StepOutcome) -> str:
        return f"{self.step_text(outcome)} failed: {outcome.error_kind}: {outcome.message}"

    def plain_line(self, outcome: StepOutcome | None = None) -> str:
        """One parseable line: ``progress: chunks=D/K tickers=F/N elapsed=S rate=R/s eta=E [step=...]``."""
        done, known, finished, unplanned = self.counts
        elapsed = self.clock() - self.started
        fetched = done - (self.first_done or 0)
        rate = fetched / elapsed if elapsed > 0 else 0.0
        eta = f"{(known - done) / rate:.0f}s" if rate > 0 and known else "?"
        text = (
            f"progress: chunks={done}/{known} tickers={finished}/{len(self.tickers)} "
            f"unplanned={unplanned} elapsed={elapsed:.0f}s rate={rate:.1f}/s eta={eta}"
        )
        if outcome is not None and not outcome.ok:
            text += f" | {self.failure_text(outcome)}"
        return text
