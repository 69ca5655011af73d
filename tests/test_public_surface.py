"""What users depend on, pinned: a change here is a change users must be told about.

The CLI's commands, the Action's inputs and outputs and the defaults a workflow relies on,
the comment verbs, and the config's top-level keys.
"""

from __future__ import annotations

import json
import re
import textwrap
import tomllib
from pathlib import Path

import click
import yaml

from previewbot.cli import main
from previewbot.commands import VERBS
from previewbot.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_cli_commands() -> None:
    assert isinstance(main, click.Group)
    assert sorted(main.commands) == [
        "action",
        "deploy",
        "destroy",
        "down",
        "gc",
        "list",
        "plan",
        "rbac",
        "schema",
        "serve",
        "up",
    ]


def test_action_inputs_and_outputs() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())

    assert action["runs"]["using"] == "composite"
    assert sorted(action["inputs"]) == [
        "config",
        "kube-context",
        "kubeconfig",
        "mode",
        "python",
        "token",
        "working-directory",
    ]
    assert sorted(action["outputs"]) == ["namespace", "sha", "status", "url"]
    assert action["inputs"]["mode"]["default"] == "run"
    assert action["inputs"]["token"]["default"] == "${{ github.token }}"
    assert action["inputs"]["config"]["default"] == ".preview.yml"


def test_comment_verbs() -> None:
    assert sorted(VERBS) == ["approve", "destroy", "help", "keep", "redeploy", "retest", "status", "wake"]


def test_config_top_level_keys() -> None:
    schema = json.loads((ROOT / "previewbot" / "schema" / "preview.schema.json").read_text())

    assert schema["additionalProperties"] is False
    assert sorted(schema["properties"]) == [
        "commands",
        "deploy",
        "environment",
        "forks",
        "helm",
        "images",
        "keep_label",
        "kustomize",
        "manifests",
        "max_previews",
        "namespace",
        "readiness",
        "sleep_after",
        "smoke",
        "status_context",
        "tests",
        "ttl",
        "url",
        "variables",
        "version",
        "when_full",
    ]
    assert "required" not in schema
    assert schema["oneOf"] == [{"required": ["manifests"]}, {"required": ["helm"]}, {"required": ["kustomize"]}]


def test_the_readme_quick_start_config_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```yaml\n(\s*version: 1\n.*?)```", readme, re.S)
    assert match is not None

    config = load_config(textwrap.dedent(match.group(1)), path="README.md")

    assert config.tests is not None
    assert config.tests.job is not None


def test_the_readme_quick_start_chart_and_overlay_are_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    sources = re.findall(r"```yaml\n(\s*(?:helm|kustomize):.*?)```", readme, re.S)

    configs = [load_config(textwrap.dedent(source), path="README.md") for source in sources]

    assert [config.helm is not None for config in configs] == [True, False]
    assert configs[1].kustomize == "deploy/overlays/preview"


def test_the_action_installs_every_dependency_pinned_by_hash() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements" / "action.txt").read_text()
    # One requirement per entry: "name==version [; marker] \" and its "--hash=sha256:..." lines.
    entries = re.split(r"\n(?=[a-z])", lock.split("\n", 2)[2])
    pinned = {entry.split("==")[0]: entry for entry in entries if "==" in entry}

    declared = {re.split(r"[<>=\[ ;]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert declared <= set(pinned), "run `make lock` after changing the dependencies"
    assert all("--hash=sha256:" in entry for entry in pinned.values())
    assert re.search(r"^uv==[\d.]+ \\\n\s+--hash=sha256:", (ROOT / "requirements" / "uv.txt").read_text(), re.M)


def test_the_example_workflow_builds_a_comments_commit_only_after_the_gate() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "workflows" / "preview.yml").read_text())
    jobs = workflow["jobs"]

    assert "concurrency" not in workflow
    assert all("timeout-minutes" in job for job in jobs.values())
    assert [name for name, job in jobs.items() if "concurrency" in job] == ["preview"]
    assert "github.event.comment.id" in jobs["preview"]["concurrency"]["group"]
    gate_steps = jobs["gate"]["steps"]
    assert not any(step.get("uses", "").startswith("actions/checkout") for step in gate_steps)
    assert gate_steps[-1]["with"]["mode"] == "gate"
    assert jobs["build"]["needs"] == "gate"
    assert "needs.gate.outputs.sha != ''" in jobs["build"]["if"]
    assert [name for name, job in jobs.items() if job["permissions"].get("packages") == "write"] == ["build"]
    checkout, previewbot = jobs["preview"]["steps"][:2]
    assert checkout["with"]["path"] == previewbot["with"]["working-directory"] == "pr"
