"""How `stockpipe` ends: the documented exit codes, the "what to run next" line, and a clean process exit.

Exit codes (a contract for scripts and cron; README "CLI reference")::

    0  everything requested is done
    1  finished, but some tickers failed or are parked (`stockpipe status` shows why)
    2  usage or configuration error, or a data directory that needs a human; nothing was fetched
    3  stopped early with work left: quota, network, another run's lease, or an interrupt

Why ``exit_now``: a run reads Parquet objects that pyarrow decodes on its C++ thread pool. The pool
thread drops the last reference to the Python ``bytes`` it decoded (``arrow::py::PyBuffer``) a moment
after the read returned, and that destructor takes the GIL. When this happens while the interpreter is
finalizing, CPython ends the pool thread with ``pthread_exit``; the forced unwind meets a ``noexcept``
C++ destructor and libstdc++ aborts the process ("terminate called without an active exception",
exit 134) after ``main`` had already returned 0. Every file the CLI writes is complete (atomic
renames) before ``main`` returns, so the process flushes its streams and leaves with ``os._exit``:
no interpreter finalization, no race, and always the code ``main`` returned.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import NoReturn


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    STOPPED = 3


def exit_now(main: Callable[[], int]) -> NoReturn:
    """Run ``main`` and end the process with its code (see the module docstring for why ``_exit``)."""
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.USAGE)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):  # every log handler writes through these, record by record
        with contextlib.suppress(Exception):  # a closed pipe (`stockpipe status | head`) is not an error
            stream.flush()
    os._exit(int(code))


def program_name(argv0: str | None = None) -> str:
    """How the user can type this program again: ``stockpipe`` when that is on PATH, else the path."""
    argv0 = argv0 or sys.argv[0]
    found = shutil.which("stockpipe")
    if Path(argv0).name != "stockpipe" or (found and Path(found).resolve() == Path(argv0).resolve()):
        return "stockpipe"  # on PATH, or called in-process (tests, notebooks)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(argv0)
        if not relative.startswith(".."):
            return relative if "/" in relative else f"./{relative}"
    return argv0


def command_line(words: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """The command to type: the user's own arguments, through ``make run`` when that is how they ran it."""
    env = dict(os.environ) if env is None else env
    if env.get("MAKELEVEL") and words and words[0] == "run":
        arguments = shlex.join(words[1:])
        return f"make run ARGS={shlex.quote(arguments)}" if arguments else "make run"
    return shlex.join([program_name(), *words])


def with_option(words: Sequence[str], option: str, value: str) -> list[str]:
    """The user's words with ``option`` set to ``value`` (replaced where given, else appended)."""
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == option:
            skip = True
            continue
        if word.startswith(option + "="):
            continue
        out.append(word)
    return [*out, option, value]
