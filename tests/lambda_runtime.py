"""A Lambda image without Docker: its task root rebuilt from the Dockerfile, run by awslambdaric.

Three pieces, each as the image and the Lambda service have them:

- ``Recipe``: the Dockerfile read instruction by instruction (FROM, ENV, COPY, RUN pip install, CMD);
  anything else fails loudly, so a new instruction cannot slip past the test.
- ``runtime_python``: the image's interpreter. A venv of this interpreter with nothing in it, into whose
  site-packages the Dockerfile's ``pip install`` (the image installs into the system site-packages, not
  the task root) and ``awslambdaric`` (preinstalled in AWS's base images) go. Cached by input hash.
- ``RuntimeAPI``: a loopback Lambda Runtime API (``/2018-06-01/runtime/invocation/next`` with the headers
  Lambda sends, ``/response``, ``/error``, ``/init/error``).

The image starts ``python -m awslambdaric <CMD>`` in ``WORKDIR /var/task``: the handler module is found
because the working directory is ``sys.path[0]``. ``python -I`` would drop exactly that entry (``-P``)
and ignore ``PYTHONPATH`` (``-E``), so the runtime runs with ``-E -s`` (``-I`` minus ``-P``), the task
root as working directory and an environment built from scratch: its ``sys.path`` is the task root, the
standard library and the venv's site-packages -- nothing from the dev environment.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

TASK_ROOT_VAR = "${LAMBDA_TASK_ROOT}"
BASE_IMAGE = "public.ecr.aws/lambda/python"
API_PREFIX = "/2018-06-01/runtime"


# --- the Dockerfile -----------------------------------------------------------------------------------


@dataclass
class Recipe:
    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source in context, destination)
    pip_args: list[str] = field(default_factory=list)  # `pip install <these>`, paths as in the image
    cmd: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _env_pairs(argument: str) -> dict[str, str]:
    words = shlex.split(argument)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}  # the legacy `ENV KEY value` form
    return dict(word.split("=", 1) for word in words)


def parse_dockerfile(path: Path) -> Recipe:
    recipe = Recipe()
    for instruction, argument in _instructions(path.read_text()):
        if instruction == "FROM":
            recipe.base = argument
        elif instruction == "ENV":
            recipe.env.update(_env_pairs(argument))
        elif instruction == "COPY":
            *sources, destination = shlex.split(argument)
            recipe.copies += [(source, destination) for source in sources]
        elif instruction == "RUN":
            words = shlex.split(argument)
            if words[:2] != ["pip", "install"]:
                raise ValueError(
                    f"{path}: RUN {argument!r} is not `pip install`; teach tests/lambda_runtime.py"
                )
            recipe.pip_args += words[2:]
        elif instruction == "CMD":
            recipe.cmd = json.loads(argument)
        else:
            raise ValueError(f"{path}: {instruction} is not understood by tests/lambda_runtime.py")
    return recipe


def _dockerignore(context: Path) -> list[str]:
    ignore = context / ".dockerignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    return [line.strip().removeprefix("**/") for line in lines if line.strip() and not line.startswith("#")]


def build_task_root(recipe: Recipe, context: Path, task_root: Path) -> None:
    """The COPY lines, with ${LAMBDA_TASK_ROOT} = ``task_root`` and the context's .dockerignore applied."""
    ignore = shutil.ignore_patterns(*_dockerignore(context))
    for source, destination in recipe.copies:
        target = Path(destination.replace(TASK_ROOT_VAR, str(task_root)))
        assert target.is_relative_to(task_root), f"COPY outside the task root: {destination}"
        origin = context / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=ignore, dirs_exist_ok=True)
        else:
            if destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                target = target / origin.name
            shutil.copy2(origin, target)


# --- the image's interpreter ----------------------------------------------------------------------------


def runtime_python(recipe: Recipe, task_root: Path, cache: Path, awslambdaric: str) -> Path:
    """A venv with the Dockerfile's pip install and ``awslambdaric==<version>`` in its site-packages."""
    pip_args = [arg.replace(TASK_ROOT_VAR, str(task_root)) for arg in recipe.pip_args]
    requirements = [Path(arg) for arg in pip_args if arg.endswith(".txt")]
    key = hashlib.sha256(
        json.dumps([recipe.pip_args, awslambdaric, sys.version, sys.platform]).encode()
        + b"".join(path.read_bytes() for path in requirements)
    ).hexdigest()[:16]
    venv = cache / key
    python = venv / "bin" / "python"
    if python.exists():
        return python
    building = cache / f"{key}.building"
    shutil.rmtree(building, ignore_errors=True)
    _run([sys._base_executable, "-m", "venv", "--without-pip", str(building)])
    site = next((building / "lib").glob("python3*/site-packages"))
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*install, "--target", str(site), *pip_args])
    _run([*install, "--target", str(site), "--only-binary=:all:", f"awslambdaric=={awslambdaric}"])
    building.rename(venv)
    return python


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")


def runtime_command(python: Path, recipe: Recipe) -> list[str]:
    """As the base image's entrypoint runs CMD (see the module docstring for -E -s)."""
    return [str(python), "-E", "-s", "-m", "awslambdaric", *recipe.cmd]


# --- the Runtime API ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str  # "response" | "error"
    body: Any
    headers: dict[str, str]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime we kill mid-poll resets its connection: expected, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeAPI:
    """Hands out queued events on /next; records what the runtime posts back (loopback only)."""

    def __init__(self, function_arn: str, *, timeout_ms: int = 900_000) -> None:
        self.function_arn = function_arn
        self.timeout_ms = timeout_ms
        self.pending: list[tuple[str, bytes]] = []
        self.answers: dict[str, Answer] = {}
        self.init_error: Any = None
        self.polls = 0
        self._changed = threading.Condition()
        self._stopped = False
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RuntimeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any) -> str:
        """Queue an event (raw bytes are sent as they are); returns its request id."""
        request_id = str(uuid.uuid4())
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        with self._changed:
            self.pending.append((request_id, body))
            self._changed.notify_all()
        return request_id

    def wait(self, request_ids: list[str], timeout: float) -> dict[str, Answer]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (set(request_ids) <= set(self.answers) or self.init_error is not None):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 1.0))
            return dict(self.answers)

    def _next(self) -> tuple[str, bytes] | None:
        with self._changed:
            self.polls += 1
            while not self.pending and not self._stopped:
                self._changed.wait(0.5)
            return self.pending.pop(0) if self.pending else None

    def _record(self, request_id: str | None, answer: Answer) -> None:
        with self._changed:
            if request_id is None:
                self.init_error = answer
            else:
                self.answers[request_id] = answer
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    return self._reply(404)
                item = api._next()
                if item is None:  # shutting down: the runtime is being stopped anyway
                    return self._reply(500, b'{"errorMessage":"runtime API stopped"}')
                request_id, body = item
                deadline = int(time.time() * 1000) + api.timeout_ms
                root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
                trace = f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0"
                return self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": trace,
                        "Content-Type": "application/json",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None
                headers = dict(self.headers.items())
                match = re.fullmatch(rf"{API_PREFIX}/invocation/([^/]+)/(response|error)", self.path)
                if match:
                    api._record(match.group(1), Answer(match.group(2), body, headers))
                elif self.path == f"{API_PREFIX}/init/error":
                    api._record(None, Answer("error", body, headers))
                else:
                    return self._reply(404)
                return self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        return Handler
