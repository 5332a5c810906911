"""The CI workflow: valid against GitHub's workflow schema, and shaped as the docs promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matches_githubs_schema():
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    assert validate(broken).returncode != 0


def _pulumi_steps(job: dict) -> list[dict]:
    return [
        s
        for s in job["steps"]
        if str(s.get("uses", "")).startswith("pulumi/actions@") and "command" in s.get("with", {})
    ]


def test_pull_requests_get_a_commented_preview_of_the_dev_stack(workflow):
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert "pull_request" in triggers
    preview = workflow["jobs"]["preview"]
    assert "pull_request" in preview["if"]
    (step,) = _pulumi_steps(preview)
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["policyPacks"] == "policy"
    assert "'dev'" in workflow["env"]["PULUMI_STACK"]
    assert preview["permissions"]["pull-requests"] == "write"


def test_main_pushes_may_deploy_behind_an_environment(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["environment"] == "dev"
    assert "github.event_name == 'push'" in deploy["if"]
    assert "refs/heads/main" in deploy["if"]
    (step,) = _pulumi_steps(deploy)
    assert step["with"]["command"] == "up"
    assert any(str(s.get("uses", "")).startswith("docker/setup-buildx-action@") for s in deploy["steps"])


def test_the_token_only_comes_from_a_secret(workflow):
    text = WORKFLOW.read_text()
    assert workflow["env"]["TIINGO_API_TOKEN"] == "${{ secrets.TIINGO_API_TOKEN }}"
    assert "--secret" in text
    assert workflow["permissions"] == {"contents": "read"}


def _sdk_pin() -> str:
    (pin,) = re.findall(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    return pin


def test_the_cli_is_pinned_to_the_sdk_version_everywhere(workflow):
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    pulumi_steps = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(pulumi_steps) == 4  # install + preview, install + up
    assert {str(s["with"]["pulumi-version"]) for s in pulumi_steps} == {_sdk_pin()}
    assert _sdk_pin() in (ROOT / "pyproject.toml").read_text()  # and the SDK the tests ran


def test_a_self_managed_backend_gets_its_passphrase_from_a_secret(workflow):
    assert workflow["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert workflow["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    header = WORKFLOW.read_text().split("\nname:", 1)[0]
    for setting in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN", "AWS_ROLE_ARN"):
        assert setting in header  # documented next to the other settings


def test_preview_and_deploy_need_the_test_job(workflow):
    test = workflow["jobs"]["test"]
    assert any(step.get("run") == "make test" for step in test["steps"])
    assert "if" not in test  # every event runs the tests
    for job in ("preview", "deploy"):
        assert workflow["jobs"][job]["needs"] == "test"


def test_the_program_venv_comes_from_pulumi_install(workflow):
    for job in ("preview", "deploy"):
        runs = [step.get("run", "") for step in workflow["jobs"][job]["steps"]]
        assert "pulumi install" in runs  # requirements.txt, as on a fresh checkout
