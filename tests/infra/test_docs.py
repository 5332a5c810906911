"""The user documentation against what it documents: every stack setting and environment variable with
its default (read from the code that defines them), the commands the guides promise, and every link.

The README is the tutorial; the reference lives in docs/ and CONTRIBUTING.md. A setting, a variable or
a default that changes in the code and not in the docs fails here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import pytest

from components.config import DEFAULTS, SECRET_COMMAND
from stockpipe import partitions, settings
from stockpipe.backfill.settings import ENV_NAMES, BackfillSettings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, ROOT / "CONTRIBUTING.md", *DOCS]
README_LIMIT = 20 * 1024  # issue 12: a tutorial, not a changelog


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def table_rows(page: Path, column: int) -> dict[str, str]:
    """Table rows whose first cell names things in backticks (several may share a row) -> cell ``column``."""
    rows: dict[str, str] = {}
    for line in re.findall(r"^\| `.+\|$", text(page), re.MULTILINE):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        for name in re.findall(r"`([A-Za-z_:]+)`", cells[0]):
            rows[name] = cells[column]
    return rows


def shown(default: object) -> str:
    if isinstance(default, str) and not default:
        return '""'
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def test_the_readme_is_a_tutorial_of_bounded_size():
    assert len(README.read_bytes()) < README_LIMIT
    headings = re.findall(r"^## (.+)$", text(README), re.MULTILINE)
    for wanted in ("Quick start", "From the simulator to real data", "Deploy", "Query", "Operate", "cost"):
        assert any(wanted.lower() in heading.lower() for heading in headings), wanted


def test_every_stack_setting_is_documented_with_its_default():
    rows = table_rows(ROOT / "docs" / "configuration.md", column=2)  # key | type | default | meaning
    assert set(DEFAULTS) | {"tickers", "tiingoApiToken"} <= set(rows)
    for key, default in DEFAULTS.items():
        assert shown(default).lower() in rows[key].lower(), key


def env_defaults() -> dict[str, object]:
    """Every variable a handler reads, with the default its settings class applies."""
    found: dict[str, object] = {}
    for cls in vars(settings).values():
        if (
            isinstance(cls, type)
            and issubclass(cls, settings.EnvSettings)
            and cls is not settings.EnvSettings
        ):
            for f in dataclasses.fields(cls):
                found[f.metadata["env"]] = f.default
    defaults = BackfillSettings()
    for field, name in ENV_NAMES.items():
        found.setdefault(name, getattr(defaults, field))
    for name in (partitions.DATABASE_ENV, partitions.TABLE_ENV, settings.API_TOKEN_ENV):
        found.setdefault(name, "")
    return found


def test_every_environment_variable_is_documented_with_its_default():
    rows = table_rows(ROOT / "docs" / "lambdas.md", column=1)  # variable | default | meaning
    for name, default in env_defaults().items():
        assert name in rows, name
        if default in ("", None):
            continue  # documented as "—" or "required in AWS"
        value = default.isoformat() if isinstance(default, date) else str(default)
        assert value.lower() in rows[name].lower(), (name, value, rows[name])


@pytest.mark.parametrize(
    "promise",
    [
        "pulumi stack init",
        SECRET_COMMAND,
        "pulumi up",
        "aws lambda invoke",
        '{"action": "status"}',
        "aws logs tail",
        "FROM stock_pipeline_dev.prices_daily",
        "exec format error",
        "docker buildx",
        "--policy-pack policy",
        "TIINGO_API_TOKEN",
        "stockpipe report",
    ],
)
def test_the_guides_hold_the_commands_they_promise(promise):
    assert any(promise in text(page) for page in PAGES), promise


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text(page), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)#]+)?(?:#([^)]+))?\)", text(page)):
        path, anchor = target
        if path.startswith(("http://", "https://")):
            continue
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {path}"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: {path}#{anchor}"


def test_json_examples_in_the_reference_parse():
    for block in re.findall(r"```json\n(.*?)```", text(ROOT / "docs" / "lambdas.md"), re.DOTALL):
        json.loads(block)
