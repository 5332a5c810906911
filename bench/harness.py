"""Timing, medians, subprocesses and the out-of-process servers every scenario shares.

The moto server and (where it matters) the Tiingo simulator run as separate processes: in-process they
would compete with the code under test for the GIL and the benchmark would measure them instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"
PYTHONPATH = os.pathsep.join(
    str(ROOT / p)
    for p in (".", "lambdas", "lambdas/tiingo_price_scraper", "lambdas/tiingo_backfill_orchestrator")
)
TOKEN = "bench-token-CANARY"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class Metric:
    """One row of the table and one entry of bench-results.json."""

    name: str
    value: float | None
    unit: str
    baseline: float | None
    target: str
    ratio: float | None = None
    met: bool | None = None  # printed in the table; not part of the JSON contract
    note: str = ""  # printed under the table

    def __post_init__(self) -> None:
        if self.ratio is None and self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": _round(self.baseline),
            "ratio": _round(self.ratio, 4),
            "target": self.target,
        }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else float(f"{x:.{digits + 2}g}")


def check(ratio_or_value: float | None, op: str, bound: float) -> bool | None:
    if ratio_or_value is None:
        return None
    return {"<=": ratio_or_value <= bound, ">=": ratio_or_value >= bound, "==": ratio_or_value == bound}[op]


@dataclass
class Context:
    """What a scenario gets: sizes (quick or full), the shared moto endpoint and a place for details.

    ``tiny`` (tests/test_bench.py) shrinks sizes further wherever a scenario offers a tiny size.
    """

    quick: bool
    moto: MotoServer
    tiny: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any, tiny: Any = None) -> Any:
        if self.tiny and tiny is not None:
            return tiny
        return quick if self.quick or self.tiny else full

    def log(self, message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """The ``ENV K=V`` lines of a Lambda's Dockerfile: image-like children run with the image's settings."""
    env = {}
    for line in dockerfile.read_text().splitlines():
        if line.startswith("ENV "):
            key, _, value = line[4:].strip().partition("=")
            env[key] = value
    return env


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TIINGO_", "DATA_"))}
    env.update(AWS_ENV)
    env["PYTHONPATH"] = PYTHONPATH
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra or {})
    return env


class MotoServer:
    """``python -m moto.server`` in its own process (its own GIL), reached over loopback HTTP."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._buckets = 0

    def start(self) -> MotoServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=child_env(),
        )
        _wait_port(self.port, self._proc)
        self._saved_env = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
        os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=self.endpoint)
        return self

    def stop(self) -> None:
        """Stop the server and give the environment back as it was (tests run the harness in-process)."""
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, config=Config(max_pool_connections=32))

    def new_bucket(self, label: str) -> str:
        self._buckets += 1
        name = f"bench-{label}-{self._buckets}-{os.getpid()}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}


class SimulatorProcess:
    """The Tiingo simulator in a child process, controlled with JSON lines over its stdin/stdout.

    Used where the simulator's own request handling would steal GIL time from the code under test.
    """

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> SimulatorProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.simserver", json.dumps(self.options, default=str)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=ROOT,
        )
        self.base_url = self._read()["base_url"]
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _read(self) -> Any:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("simulator process died")
        return json.loads(line)

    def call(self, command: str, **args: Any) -> Any:
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"command": command, **args}, default=str) + "\n")
        self._proc.stdin.flush()
        return self._read()["result"]

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self.call("quit")
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def image_site(requirements: Path) -> Path:
    """The function's requirements alone, installed for this interpreter under .bench-cache/.

    Children run with ``python -S`` and this directory on PYTHONPATH see what the Lambda image has and
    nothing else (the dev venv also holds pandas/numpy, and pyarrow imports numpy whenever it can).
    """
    import hashlib

    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    site = CACHE / f"site-py{sys.version_info.major}{sys.version_info.minor}-{digest}"
    if not (site / ".complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install",
             "--only-binary=:all:", "--target", str(site), "-r", str(requirements)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        (site / ".complete").touch()
    return site


def run_child(
    module: str,
    args: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    site: Path | None = None,
) -> dict[str, Any]:
    """Run ``python -m <module> <json>`` in a fresh interpreter; its last stdout line is a JSON result.

    With ``site``, the child runs without the venv's site-packages (``-S``): only ``site`` and our code.
    """
    child = child_env(env)
    flags = []
    if site is not None:
        flags = ["-S"]
        child["PYTHONPATH"] = os.pathsep.join([str(site), PYTHONPATH])
    proc = subprocess.run(
        [sys.executable, *flags, "-m", module, json.dumps(dict(args), default=str)],
        capture_output=True,
        text=True,
        env=child,
        cwd=ROOT,
        timeout=900,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"result"')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])["result"]


def emit(result: Any) -> None:
    """The child's side of run_child."""
    sys.stdout.write(json.dumps({"result": result}, default=str) + "\n")
    sys.stdout.flush()


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB.

    VmHWM of /proc/self/status, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so
    a child forked from a 200 MB parent would report at least 200 MB whatever it used itself.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one by default), from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_sockets() -> int:
    """Sockets this process holds open now (file descriptors linked to socket:[...])."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
    return count


@contextlib.contextmanager
def sampler(interval: float = 0.05) -> Iterator[dict[str, int]]:
    """Track the maximum of open sockets and live threads while the block runs."""
    import threading

    peak = {"sockets": open_sockets(), "threads": threading.active_count()}
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval):
            peak["sockets"] = max(peak["sockets"], open_sockets())
            peak["threads"] = max(peak["threads"], threading.active_count() - 1)

    thread = threading.Thread(target=loop, daemon=True, name="bench-sampler")
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
