"""Scenario 6a: installed size of each function's requirements, resolved for linux/amd64 CPython 3.12.

Wheels are downloaded once into .bench-cache/wheels/ and installed from there (no index) on re-runs.
The figure is the dependency tree plus our own code (what the image adds on top of the base image).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import CACHE, ROOT, Context, Metric, check

# Per function: the scraper needs pyarrow; the orchestrator only reads JSON (issue 14: no pyarrow).
TARGET_MB = {"scraper": 250.0, "orchestrator": 40.0}
# pyarrow >= 21 ships manylinux_2_28 wheels only: with manylinux2014 alone pip finds no pyarrow 26. The
# Lambda python3.12 base image (Amazon Linux 2023, glibc 2.34) accepts every tag listed here.
PLATFORM = [
    *("--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64"),
    *("--python-version", "3.12", "--only-binary=:all:"),
]
FUNCTIONS = {
    "scraper": ("tiingo_price_scraper", "lambda_function.py"),
    "orchestrator": ("tiingo_backfill_orchestrator", "backfill_orchestrator.py"),
}


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
        timeout=900,
    )


def _pins(requirements: Path) -> str:
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return "\n".join(sorted(line for line in lines if line))


def installed_mb(requirements: Path) -> tuple[float, dict[str, float]]:
    """Size in MB of ``pip install --target`` for the requirements file, and the biggest packages.

    Cached under .bench-cache/ by the exact pins (comments ignored): the same pins give the same wheels.
    """
    digest = hashlib.sha256(_pins(requirements).encode()).hexdigest()[:16]
    measured = CACHE / f"image-{digest}.json"
    if measured.exists():
        cached = json.loads(measured.read_text())
        return cached["total_mb"], cached["biggest_mb"]
    wheels = CACHE / "wheels" / digest
    if not (wheels / ".complete").exists():
        wheels.mkdir(parents=True, exist_ok=True)
        _pip("download", "-d", str(wheels), *PLATFORM, "-r", str(requirements))
        (wheels / ".complete").touch()
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        target = Path(tmp) / "site"
        _pip(
            "install", "--no-index", "--find-links", str(wheels), "--target", str(target), *PLATFORM,
            "-r", str(requirements),
        )  # fmt: skip
        total = tree_bytes(target)
        parts = {
            p.name: tree_bytes(p) / 1e6
            for p in target.iterdir()
            if p.is_dir() and not p.name.endswith("-info")
        }
    biggest = dict(sorted(parts.items(), key=lambda kv: -kv[1])[:4])
    measured.write_text(json.dumps({"total_mb": total / 1e6, "biggest_mb": biggest}))
    return total / 1e6, biggest


def run(ctx: Context) -> list[Metric]:
    metrics = []
    own_code = tree_bytes(ROOT / "lambdas" / "stockpipe") / 1e6
    for label, (folder, handler) in FUNCTIONS.items():
        requirements = ROOT / "lambdas" / folder / "requirements.txt"
        deps, biggest = installed_mb(requirements)
        handler_path = ROOT / "lambdas" / folder / handler
        handler_mb = handler_path.stat().st_size / 1e6 if handler_path.exists() else 0.0
        total = deps + own_code + handler_mb
        ctx.log(f"image {label}: {total:.1f} MB (deps {deps:.1f}; biggest {biggest})")
        ctx.details[f"image_{label}"] = {"deps_mb": deps, "own_code_mb": own_code, "biggest_mb": biggest}
        metrics.append(
            Metric(
                f"image_mb_{label}",
                total,
                "MB",
                None,
                f"<= {TARGET_MB[label]:g} MB",
                met=check(total, "<=", TARGET_MB[label]),
                note=f"deps {deps:.1f} MB + our code {own_code + handler_mb:.2f} MB; largest: "
                + ", ".join(f"{k} {v:.0f}" for k, v in biggest.items()),
            )
        )
    return metrics
