"""Lambda image inputs: hadolint clean, base image and packages pinned, no numpy/pandas, content tags."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.image_tag import build_inputs, image_tag
from tests.conftest import TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = re.compile(r"^FROM (public\.ecr\.aws/lambda/python:3\.12)@(sha256:[0-9a-f]{64})$", re.MULTILINE)
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
    (base,) = BASE_IMAGE.findall(text)  # one FROM, the AWS Python 3.12 base, pinned by digest
    assert base[0] == "public.ecr.aws/lambda/python:3.12"
    assert "COPY stockpipe/ ${LAMBDA_TASK_ROOT}/stockpipe/" in text  # the shared package, copied once
    assert f'CMD ["{module}.lambda_handler"]' in text


def test_both_images_share_one_base_digest():
    digests = {BASE_IMAGE.search((ROOT / "lambdas" / f / "Dockerfile").read_text()).group(2) for f in LAMBDAS}
    assert len(digests) == 1, digests


@pytest.mark.parametrize("folder", sorted(LAMBDAS))
def test_a_new_base_digest_is_a_new_image_tag(folder, tmp_path):
    """The tag hashes the Dockerfile, so bumping the base digest alone rebuilds and repins the function."""
    assert ROOT / "lambdas" / folder / "Dockerfile" in build_inputs(ROOT / "lambdas", folder)
    context = tmp_path / "lambdas"
    shutil.copytree(ROOT / "lambdas", context, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = image_tag(context, folder)
    assert before == image_tag(ROOT / "lambdas", folder)  # the copy is the same build input
    dockerfile = context / folder / "Dockerfile"
    dockerfile.write_text(
        BASE_IMAGE.sub(lambda m: f"FROM {m.group(1)}@sha256:{'0' * 64}", dockerfile.read_text())
    )
    assert BASE_IMAGE.search(dockerfile.read_text()).group(2) == f"sha256:{'0' * 64}"
    assert image_tag(context, folder) != before


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


def in_the_image(
    folder: str, module: str, code: str, *, blocked: tuple[str, ...], env: dict[str, str]
) -> None:
    """Run ``code`` after importing the handler in a fresh interpreter laid out like LAMBDA_TASK_ROOT,
    where the ``blocked`` modules cannot be imported (as their absence from the image makes them).

    The dev venv has numpy (benchmarks use pandas) and pyarrow imports it opportunistically, so the
    tests block what the image lacks.
    """
    prelude = "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    script = (
        f"import sys\n{prelude}"
        f"sys.path[:0] = [{str(ROOT / 'lambdas')!r}, {str(ROOT / 'lambdas' / folder)!r}]\n"
        f"import {module}\n"
        f"assert callable({module}.lambda_handler)\n" + code
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False, cwd="/", env=env
    )
    assert result.returncode == 0, result.stderr


def test_the_scraper_imports_and_writes_parquet_without_numpy_or_pandas():
    code = (
        "import pyarrow.parquet as pq, io\n"
        "from stockpipe.prices import rows_to_table\n"
        "row = {'date': '2024-01-02T00:00:00.000Z', 'open': 1, 'close': 1, 'volume': 1}\n"
        "pq.write_table(rows_to_table([row]), io.BytesIO(), compression='zstd')\n"
    )
    in_the_image("tiingo_price_scraper", "lambda_function", code, blocked=("numpy", "pandas"), env={})


def requirement_names(folder: str) -> set[str]:
    lines = (ROOT / "lambdas" / folder / "requirements.txt").read_text().splitlines()
    return {canonical(line.split("==")[0]) for line in lines if line.strip() and not line.startswith("#")}


def test_the_orchestrator_image_has_no_pyarrow_and_its_metadata_lookup_never_needs_it(simulator):
    """The lean image: pyarrow is not installed, and the handler, its runtime (clients, store) and a
    Tiingo metadata lookup over real HTTP run with pyarrow (and numpy, pandas) unimportable."""
    assert "pyarrow" not in requirement_names("tiingo_backfill_orchestrator")
    assert "pyarrow" in requirement_names("tiingo_price_scraper")
    env = {
        "DATA_BUCKET": "lean-image-test",
        "SCRAPER_FUNCTION_NAME": "tiingo-price-scraper",
        "TIINGO_API_TOKEN": TEST_TOKEN,
        "TIINGO_BASE_URL": simulator.base_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    code = (
        "import os, datetime\n"
        "backfill_orchestrator.runtime()\n"
        "from stockpipe.tiingo import client_from_env\n"
        "metadata = client_from_env(os.environ).get_metadata('AAPL')\n"
        "assert metadata.start_date == datetime.date(1980, 12, 12), metadata\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'numpy', 'pandas') "
        "and sys.modules[m] is not None)\n"
        "assert not loaded, loaded\n"
    )
    in_the_image(
        "tiingo_backfill_orchestrator",
        "backfill_orchestrator",
        code,
        blocked=("numpy", "pandas", "pyarrow"),
        env=env,
    )
    assert simulator.count() == 1  # the lookup really went over HTTP
