"""What a local run shows: transient progress on stderr, and tables (one renderer for every table)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

from stockpipe.backfill import progress as prog
from stockpipe.backfill.orchestrator import StepOutcome


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
) -> str:
    """A plain-text table: columns padded to their widest cell, the last column free, a rule under the header.

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
    """Progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._open_line = False

    def line(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        """A transient line: redrawn in place on a TTY, printed as-is otherwise."""
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._open_line = True
        else:
            self.line(text)

    def done(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


class ProgressBar:
    """Chunks done / chunks known, from the progress snapshot after every step."""

    WIDTH = 30

    def __init__(self, console: Console, tickers: list[str], chunk_months: int) -> None:
        self.console = console
        self.tickers = tickers
        self.chunk_months = chunk_months
        self.steps = 0

    def __call__(self, outcome: StepOutcome, snapshot: prog.Progress) -> None:
        self.steps += 1
        if not self.console.tty and outcome.ok and self.steps % 10 and outcome.work.kind == "chunk":
            return  # plain output: one line every ten steps, and every failure
        self.console.status(self.render(snapshot, outcome))

    def render(self, snapshot: prog.Progress, outcome: StepOutcome | None = None) -> str:
        done_chunks = known = unplanned = finished = 0
        for ticker in self.tickers:
            record = snapshot.get(ticker)
            left = prog.chunks_left(record, self.chunk_months)
            if record is None or left is None:
                unplanned += 1
                continue
            done_chunks += record.chunks_done
            known += record.chunks_done + (0 if record.parked else left)
            finished += record.done or record.parked
        fraction = done_chunks / known if known else 0.0
        filled = math.floor(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        text = f"[{bar}] {done_chunks}/{known} chunks, {finished}/{len(self.tickers)} tickers"
        if unplanned:
            text += f" ({unplanned} not planned yet)"
        if outcome is not None:
            work = outcome.work
            what = f"{work.start}..{work.end}" if work.kind == "chunk" else "metadata"
            text += f" | {work.ticker} {what}"
            if not outcome.ok:
                text += f" FAILED: {outcome.error_kind}"
        return text
