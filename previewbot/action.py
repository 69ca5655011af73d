"""The GitHub Action front door: the runner's environment in, outputs and a job summary out.

Translates only: the event file becomes intents, the core runs them, and the outcome becomes
the step's outputs (url, namespace, status), its summary, ::error:: annotations and the exit code.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from previewbot import checkout, events, render
from previewbot.core.previews import Outcome, Previews, Settings
from previewbot.errors import PreviewbotError, UserError
from previewbot.model import Deploy
from previewbot.redact import redactor

log = logging.getLogger("previewbot")


@dataclass(frozen=True, kw_only=True)
class Runner:
    """What the Actions runner tells a step through its environment."""

    event_name: str
    event_path: Path
    repository: str
    server_url: str
    workspace: Path
    run_url: str | None
    output_path: Path | None
    summary_path: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Runner:
        missing = [key for key in ("GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH") if not env.get(key)]
        if missing:
            raise PreviewbotError(f"{', '.join(missing)} not set: `previewbot action` runs inside a GitHub Actions job")
        server_url = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repository = env.get("GITHUB_REPOSITORY", "")
        run_id = env.get("GITHUB_RUN_ID")
        return cls(
            event_name=env["GITHUB_EVENT_NAME"],
            event_path=Path(env["GITHUB_EVENT_PATH"]),
            repository=repository,
            server_url=server_url,
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            run_url=f"{server_url}/{repository}/actions/runs/{run_id}" if run_id and repository else None,
            output_path=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary_path=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
        )

    def settings(self, *, working_directory: str, config_path: str) -> Settings:
        folder = (self.workspace / working_directory).resolve()
        checkout_sha = checkout_commit(folder)
        if checkout_sha is None:
            log.info("%s is not a git checkout previewbot can read: deploys do not check its commit", folder)
        return Settings(
            workspace=folder,
            config_path=config_path,
            server_url=self.server_url,
            run_url=self.run_url,
            checkout_sha=checkout_sha,
        )


def checkout_commit(folder: Path) -> str | None:
    """The commit of the git checkout holding `folder`, read from its .git (no git runs in it); None: not one."""
    try:
        return checkout.read_head(folder).sha
    except UserError:
        return None


def run(runner: Runner, previews: Previews) -> int:
    """Handle the run's event, then what its outcomes ask for next; returns the exit code."""
    payload = events.read_event_file(runner.event_path)
    intents = events.intents_from_event(runner.event_name, payload, repository=runner.repository or None)
    # A comment may hold several commands: each runs, the last that did something sets the outputs,
    # and any failure fails the step.
    outcomes = [previews.handle(intent) for intent in intents]
    write_outputs(runner, next((o for o in reversed(outcomes) if o.status != "ignored"), outcomes[-1]))
    outcomes += [deploy_next(previews, deploy) for outcome in outcomes for deploy in outcome.follow_up]
    if runner.summary_path is not None:
        with runner.summary_path.open("a", encoding="utf-8") as summary:
            for outcome in outcomes:
                if outcome.report is not None:
                    summary.write(render.render_summary(outcome.report, server_url=runner.server_url) + "\n")
    failures = [o for o in outcomes if o.failed]
    for failure in failures:
        annotate_error(failure.message)
    return 1 if failures else 0


def deploy_next(previews: Previews, deploy: Deploy) -> Outcome:
    """Deploy another PR than the event's (the first in line for a freed slot), from its files at its head.

    The checkout is the event's PR's, if any: the other PR's `.preview.yml` and the files it names
    are fetched at its head instead, and run nothing here.
    """
    log.info("deploying %s#%d next (%s)", deploy.pr.repo, deploy.pr.number, deploy.trigger)
    with tempfile.TemporaryDirectory(prefix="previewbot-") as folder:
        return previews.fetched(deploy.pr, into=Path(folder)).handle(deploy)


def gate(runner: Runner, previews: Previews) -> int:
    """Say which commit a comment lets the workflow build (the `sha` output; empty: none), and change nothing.

    Runs before the build job, with no checkout: a fork's image is built only once previewbot has
    checked who commented and that the command approves that fork's head.
    """
    payload = events.read_event_file(runner.event_path)
    intents = events.intents_from_event(runner.event_name, payload, repository=runner.repository or None)
    sha = next((sha for intent in intents if (sha := previews.buildable_commit(intent))), "")
    log.info("the workflow may build %s", sha[:7] if sha else "nothing for this event")
    _write_outputs(runner, {"sha": sha})
    return 0


def write_outputs(runner: Runner, outcome: Outcome) -> None:
    _write_outputs(
        runner, {"status": str(outcome.status), "url": outcome.url or "", "namespace": outcome.namespace or ""}
    )


def _write_outputs(runner: Runner, outputs: Mapping[str, str]) -> None:
    for key, value in outputs.items():
        log.debug("output %s=%s", key, value)
    if runner.output_path is None:
        return
    with runner.output_path.open("a", encoding="utf-8") as out:
        for key, value in outputs.items():
            # The heredoc form, with a delimiter no value can contain, keeps any text on one output.
            delimiter = f"previewbot_{uuid.uuid4().hex}"
            out.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def annotate_error(message: str) -> None:
    """An ::error:: workflow command: shown on the run's page and the PR's checks."""
    text = redactor.redact(message)
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    print(f"::error title=previewbot::{escaped}", flush=True)
