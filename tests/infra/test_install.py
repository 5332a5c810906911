"""`pulumi install` on a fresh checkout, and Pulumi.yaml against Pulumi's own project schema.

Pulumi's pip toolchain (pulumi/pulumi ``sdk/python/toolchain/pip.go``, ``InstallDependencies``) runs, in
the project directory: ``python -m venv <virtualenv>``, ``python -m pip install --upgrade pip setuptools
wheel`` and ``python -m pip install -r requirements.txt`` -- and nothing else when there is no
requirements.txt. So the test asks pip itself what ``-r requirements.txt`` installs (``--dry-run
--ignore-installed --report``, as into an empty venv) and checks it against the pins. The report needs
PyPI once; it is cached under .pytest_cache, keyed by the files that decide it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
SCHEMA = ROOT / "tests" / "schemas" / "pulumi-project.json"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$", re.MULTILINE)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {canonical(name): version for name, version in PIN.findall(path.read_text())}


def validate_project(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- Pulumi.yaml ----------------------------------------------------------------------------------------


def test_pulumi_yaml_matches_pulumis_project_schema():
    result = validate_project(ROOT / "Pulumi.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_project_schema_check_can_fail(tmp_path):
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project["runtime"]["toolchain"] = "pip"  # an option at the wrong level
    project["config"]["tickers"]["type"] = "list"  # not a Pulumi config type
    broken = tmp_path / "Pulumi.yaml"
    broken.write_text(yaml.safe_dump(project))
    result = validate_project(broken)
    assert result.returncode != 0
    assert "toolchain" in result.stdout + result.stderr


# --- requirements.txt -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def install_report(request: pytest.FixtureRequest) -> list[dict]:
    """What pip installs for ``-r requirements.txt`` into an empty venv (name, version, requested)."""
    inputs = [REQUIREMENTS, ROOT / "pyproject.toml"]
    key = hashlib.sha256(b"".join(p.read_bytes() for p in inputs) + sys.version.encode()).hexdigest()[:16]
    cached = request.config.cache.mkdir("pulumi-install") / f"{key}.json"
    if not cached.exists():
        report = cached.with_suffix(".tmp")
        dry_run = ["--quiet", "--dry-run", "--ignore-installed", "--report", str(report)]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", *dry_run, "-r", REQUIREMENTS.name],
            cwd=ROOT,  # as Pulumi runs it: `-e .` is the project directory
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report.rename(cached)
    return [
        {
            "name": canonical(item["metadata"]["name"]),
            "version": item["metadata"]["version"],
            "requested": item.get("requested", False),
        }
        for item in json.loads(cached.read_text())["install"]
    ]


def test_pulumi_install_gets_the_pulumi_sdks_at_the_pinned_versions(install_report):
    installed = {item["name"]: item["version"] for item in install_report}
    declared = {
        canonical(name): version
        for name, version in (
            dep.split("==") for dep in _pyproject()["project"]["dependencies"] if dep.startswith("pulumi")
        )
    }
    assert set(declared) == {"pulumi", "pulumi-aws", "pulumi-docker"}
    for name, version in declared.items():
        assert installed.get(name) == version, f"{name}: pip would install {installed.get(name)}"


def test_pulumi_install_gets_the_project_itself_so_the_program_can_import_stockpipe(install_report):
    project = next(item for item in install_report if item["name"] == "stock-pipeline")
    assert project["requested"]
    assert "-e ." in REQUIREMENTS.read_text().splitlines()


def test_everything_pulumi_install_gets_is_pinned_to_the_lock(install_report):
    """No version floats: every package of the closure is pinned in requirements.txt, as in the lock."""
    lock, pinned = pins(ROOT / "requirements.lock"), pins(REQUIREMENTS)
    for item in install_report:
        if item["name"] == "stock-pipeline":
            continue
        assert pinned.get(item["name"]) == item["version"], (
            f"{item['name']} is not pinned in requirements.txt"
        )
        assert lock.get(item["name"]) == item["version"], f"{item['name']} differs from requirements.lock"
    assert set(pinned) == {item["name"] for item in install_report} - {"stock-pipeline"}  # nothing stale


def test_the_editable_project_is_importable_outside_the_repository():
    """`-e .` is how both `make` and `pulumi install` expose stockpipe (lambdas/) to the program."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import stockpipe.layout, stockpipe.tickers; print(stockpipe.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(ROOT / "lambdas" / "stockpipe")


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())
