"""Lambda image inputs: hadolint clean, pinned, no numpy/pandas, handlers import as in the image."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = {
    "tiingo_price_scraper": "lambda_function",
    "tiingo_backfill_orchestrator": "backfill_orchestrator",
}


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def lock_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


@pytest.mark.parametrize("folder", sorted(LAMBDAS))
def test_dockerfile_is_hadolint_clean(folder):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "lambdas" / folder / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("folder", "module"), sorted(LAMBDAS.items()))
def test_dockerfile_contract(folder, module):
    text = (ROOT / "lambdas" / folder / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.12$", text, re.M)
    assert "COPY stockpipe/ ${LAMBDA_TASK_ROOT}/stockpipe/" in text  # the shared package, copied once
    assert f'CMD ["{module}.lambda_handler"]' in text


@pytest.mark.parametrize("folder", sorted(LAMBDAS))
def test_requirements_are_pinned_to_the_lock_and_free_of_numpy_and_pandas(folder):
    lock = lock_versions()
    lines = [
        line.strip()
        for line in (ROOT / "lambdas" / folder / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines
    for line in lines:
        name, _, version = line.partition("==")
        assert version, f"{line!r} is not pinned with =="
        assert lock[canonical(name)] == version, f"{name} differs from requirements.lock"
        assert canonical(name) not in {"numpy", "pandas"}


@pytest.mark.parametrize(("folder", "module"), sorted(LAMBDAS.items()))
def test_handler_imports_as_in_the_image_without_numpy_or_pandas(folder, module):
    """A fresh interpreter laid out like LAMBDA_TASK_ROOT, where numpy and pandas cannot be imported.

    The dev venv has numpy (benchmarks use pandas) and pyarrow imports it opportunistically, so the
    test blocks both, as their absence from the image does, and runs a scrape-free handler import.
    """
    code = (
        "import sys; sys.modules['numpy'] = None; sys.modules['pandas'] = None\n"
        f"sys.path[:0] = [{str(ROOT / 'lambdas')!r}, {str(ROOT / 'lambdas' / folder)!r}]\n"
        f"import {module}\n"
        f"assert callable({module}.lambda_handler)\n"
        "import pyarrow as pa, pyarrow.parquet as pq, io\n"
        "from stockpipe.prices import rows_to_table\n"
        "row = {'date': '2024-01-02T00:00:00.000Z', 'open': 1, 'close': 1, 'volume': 1}\n"
        "pq.write_table(rows_to_table([row]), io.BytesIO(), compression='zstd')\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False, cwd="/"
    )
    assert result.returncode == 0, result.stderr
