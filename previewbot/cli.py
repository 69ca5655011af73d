"""The command line: `previewbot plan | up | down | list | deploy | destroy | action | rbac`.

A front door like the Action: it parses options, wires the adapters, and hands intents to the core.

Start-up stays fast because this module imports only click and the standard library: each command
imports what it uses inside its own function, so `--help` never loads PyGithub, the kubernetes
client or pydantic, and `plan` never loads an SDK. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from previewbot.config import PreviewConfig
    from previewbot.core.previews import Outcome, Previews
    from previewbot.manifests import Rendered
    from previewbot.model import OnDemand, Previewed, PrRef, PullRequest

PLAN_SHA = "0123456789abcdef0123456789abcdef01234567"


F = TypeVar("F", bound=Callable[..., Any])


def _connection_options(command: F) -> F:
    options = [
        click.option(
            "--token",
            envvar=["INPUT_TOKEN", "GITHUB_TOKEN"],
            required=True,
            show_envvar=True,
            help="GitHub token with contents:read, pull-requests, issues, deployments and statuses: write.",
        ),
        click.option(
            "--api-url",
            envvar="GITHUB_API_URL",
            default=None,
            show_envvar=True,
            help="GitHub API address; GitHub Enterprise Server sets it. Default: api.github.com.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return _cluster_options(command)


def _cluster_options(command: F) -> F:
    options = [
        click.option(
            "--kubeconfig",
            envvar="INPUT_KUBECONFIG",
            default=None,
            help="Kubeconfig file or its text. Default: $KUBECONFIG, then the in-cluster service account.",
        ),
        click.option(
            "--context",
            "kube_context",
            envvar="INPUT_KUBE_CONTEXT",
            default=None,
            help="Kubeconfig context to use.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings_options(command: F) -> F:
    options = [
        click.option(
            "--workspace",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("."),
            show_default=True,
            help="The checkout of the PR's head.",
        ),
        click.option(
            "--config",
            "config_path",
            default=".preview.yml",
            show_default=True,
            help="Path of the config inside the workspace.",
        ),
        click.option(
            "--server-url",
            envvar="GITHUB_SERVER_URL",
            default="https://github.com",
            show_default=True,
            help="GitHub web address, for links.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="previewbot")
def main(verbose: bool) -> None:
    """previewbot: a preview environment on Kubernetes for every pull request.

    Each PR gets a namespace with its images deployed, end-to-end tests run against it,
    and one PR comment, a GitHub Deployment and commit statuses that say how it went.
    """
    from previewbot.wiring import setup_logging

    setup_logging(verbose=verbose)


@main.command()
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".")
@click.option("--config", "config_path", default=".preview.yml", show_default=True)
@click.option("--repo", default=None, help="owner/name. Default: example/<folder name>.")
@click.option("--pr", "number", type=int, default=1, show_default=True)
@click.option("--sha", default=PLAN_SHA, help="Head commit to pin images to.")
@click.option("--branch", default="feature/preview", show_default=True)
@click.option("--name", default=None, help="Plan the on-demand preview of this name (`up --name`), not a PR's.")
def plan(
    workspace: Path, config_path: str, repo: str | None, number: int, sha: str, branch: str, name: str | None
) -> None:
    """Show what a deploy would do, with no cluster and no GitHub.

    Prints the checks, the variables, the namespace, every object after substitution and image
    pinning (guardrails and the test Job included), and the PR comment a ready preview would get
    (with --name: what `up` would print).
    """
    import yaml

    from previewbot import junit, manifests, naming, render
    from previewbot.core.testing import e2e_job
    from previewbot.errors import PreviewbotError
    from previewbot.model import OnDemand, Phase, PreviewReport, PullRequest, StepTiming

    repo = repo or f"example/{workspace.resolve().name}"
    pr: Previewed = (
        OnDemand(repo=repo, name=naming.on_demand_name(name), head_sha=sha, head_ref=branch)
        if name
        else _example_pr(repo, number=number, sha=sha, branch=branch)
    )
    try:
        config, namespace, variables, rendered = _render_preview(workspace, config_path, pr)
        url = variables.get("PREVIEW_URL") or None
        labels = naming.labels_of(pr)
        guardrails = manifests.guardrails(
            config, namespace=namespace, labels={**labels, naming.COMPONENT_LABEL: "guardrail"}
        )
        markers = junit.ReportMarkers.new()
        job = (
            e2e_job(config, variables=variables, labels=labels, markers=markers)
            if config.tests and config.tests.job
            else None
        )
    except PreviewbotError as error:
        click.echo(f"✘ {error}", err=True)
        sys.exit(1)
    out = click.echo
    out(f"# ✔ {config_path} is valid")
    out(
        f"# ✔ {len(rendered.objects)} objects from {rendered.origin}; "
        f"workloads: {', '.join(map(str, rendered.workloads)) or 'none'}"
    )
    for skipped in rendered.skipped:
        out(f"# - not deployed: {skipped}")
    if rendered.kept:
        out(f"# ${{NAME}}s left as written, none of previewbot's variables ({len(rendered.kept)}):")
        for reference in rendered.kept:
            out(f"#   {reference}")
    out(f"# variables of {pr.title}:")
    for variable, value in variables.items():
        out(f"#   ${{{variable}}} = {value}")
    for image in config.images:
        out(f"# ✔ image {image.name} pinned to tag {manifests.substitute(image.tag, variables)}")
    out(f"# namespace: {namespace}")
    out(f"# url: {url or '(none)'}")
    if isinstance(pr, PullRequest):  # an on-demand preview has no GitHub Deployment
        out(f"# environment: {manifests.deployment_environment(config, variables)}")
    documents = [*guardrails, *rendered.objects, *([job] if job else [])]
    out(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True).rstrip())
    now = datetime.now(UTC)
    steps = tuple(
        StepTiming(name=step, started=now, seconds=0.0, ok=True)
        for step in ("Namespace", "Apply manifests", "Wait for rollout")
    )
    report = PreviewReport(
        ref=pr.ref, phase=Phase.READY, head_sha=sha, namespace=namespace, url=url, steps=steps, updated_at=now
    )
    if isinstance(pr, OnDemand):
        out("---\n# What `previewbot up` prints of a ready preview:")
        shown = render.render_terminal(report)
    else:
        out("---\n# The PR comment of a ready preview:")
        shown = render.render_comment(report)
    for line in shown.splitlines():
        out(f"# {line}")


def _example_pr(repo: str, *, number: int, sha: str, branch: str) -> PullRequest:
    """A pull request of repo to render a checkout as, where there is no GitHub to ask."""
    from previewbot.model import PullRequest

    return PullRequest(
        repo=repo,
        number=number,
        head_sha=sha,
        head_ref=branch,
        base_ref="main",
        default_branch="main",
        author="octocat",
        head_repo=repo,
    )


def _render_preview(
    workspace: Path, config_path: str, pr: Previewed
) -> tuple[PreviewConfig, str, dict[str, str], Rendered]:
    """The config, namespace, variables and rendered manifests a deploy of pr would have."""
    from previewbot import manifests, naming
    from previewbot.config import load_config_file

    config = load_config_file(workspace, config_path)
    namespace = naming.namespace_of(pr, prefix=config.namespace.prefix)
    base = manifests.preview_variables(pr=pr, namespace=namespace, url=None, extra={})
    url = manifests.preview_url(config, base)
    variables = manifests.preview_variables(pr=pr, namespace=namespace, url=url, extra=config.variables)
    labels = naming.labels_of(pr)
    rendered = manifests.render_manifests(
        config,
        root=workspace,
        variables=variables,
        namespace=namespace,
        labels={**labels, naming.COMPONENT_LABEL: "app"},
    )
    return config, namespace, variables, rendered


@main.command()
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option("--config", "config_path", default=".preview.yml", show_default=True)
@click.option(
    "--service-account",
    default="previewbot/previewbot",
    show_default=True,
    help="namespace/name of the ServiceAccount previewbot runs as.",
)
@click.option("--user", default=None, help="Bind a user (a client certificate's name) instead of a ServiceAccount.")
@click.option("--name", default=None, help="Name of the ClusterRoles and bindings. Default: previewbot.")
def rbac(workspace: Path | None, config_path: str, service_account: str, user: str | None, name: str | None) -> None:
    """Print the RBAC previewbot needs, as manifests to apply once.

    Cluster-wide: namespaces, and binding its own preview ClusterRole. Inside each preview
    namespace, previewbot binds itself to that ClusterRole, which holds the kinds it applies
    (with WORKSPACE's, from its .preview.yml and manifests) and reads pods, logs and events.
    The Secrets of namespace.secrets may be read by name, each in its own namespace.
    """
    import yaml

    from previewbot import rbac as rules
    from previewbot.errors import PreviewbotError

    kinds: set[tuple[str, str]] = set()
    sources: list[str] = []
    if workspace is not None:
        repo = f"example/{workspace.resolve().name}"
        pr = _example_pr(repo, number=1, sha=PLAN_SHA, branch="rbac")
        try:
            config, _, _, rendered = _render_preview(workspace, config_path, pr)
        except PreviewbotError as error:
            click.echo(f"✘ {error}", err=True)
            sys.exit(1)
        kinds = set(rendered.kinds)
        sources = [secret.from_ for secret in config.namespace.secrets]
    if user:
        subject = rules.subject(user)
    else:
        namespace, _, account = service_account.partition("/")
        subject = rules.subject(f"{rules.SERVICE_ACCOUNT_PREFIX}{namespace}:{account}")
    documents = rules.manifests(subject=subject, name=name, kinds=sorted(kinds), secret_sources=sources)
    click.echo(yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True).rstrip())


def _exit(outcome: Outcome) -> None:
    click.echo(f"status={outcome.status} namespace={outcome.namespace or ''} url={outcome.url or ''}")
    sys.exit(1 if outcome.failed else 0)


def _pr_command(*, with_runner: bool) -> Callable[[Callable[[Previews, PrRef], Outcome]], click.Command]:
    """A command that acts on one PR: its options, wiring and exit code, around `run`."""

    def decorate(run: Callable[[Previews, PrRef], Outcome]) -> click.Command:
        @click.option("--repo", required=True, help="owner/name")
        @click.option("--pr", "number", type=int, required=True)
        @_settings_options
        @_connection_options
        @functools.wraps(run)
        def command(
            repo: str,
            number: int,
            workspace: Path,
            config_path: str,
            server_url: str,
            token: str,
            api_url: str | None,
            kubeconfig: str | None,
            kube_context: str | None,
        ) -> None:
            from previewbot.core.previews import Settings
            from previewbot.model import PrRef
            from previewbot.wiring import Connection, build_previews

            with _plainly():
                previews = build_previews(
                    Connection(token=token, api_url=api_url, kubeconfig=kubeconfig, kube_context=kube_context),
                    Settings(workspace=workspace.resolve(), config_path=config_path, server_url=server_url),
                    with_runner=with_runner,
                )
                outcome = run(previews, PrRef(repo=repo, number=number))
            _exit(outcome)

        return main.command(name=run.__name__)(command)

    return decorate


@_pr_command(with_runner=True)
def deploy(previews: Previews, ref: PrRef) -> Outcome:
    """Deploy a PR's current head now, as a push would (its tests included)."""
    from previewbot.model import Deploy

    return previews.handle(Deploy(pr=previews.pull_request(ref.repo, ref.number), trigger="manual"))


@_pr_command(with_runner=False)
def destroy(previews: Previews, ref: PrRef) -> Outcome:
    """Tear a PR's preview down now: its namespace (only if previewbot's), deployments, comment."""
    from previewbot.model import Destroy

    return previews.handle(Destroy(ref=ref, reason="manual"))


@main.command()
@click.option(
    "--repo",
    "repos",
    multiple=True,
    help="Only this repo's previews (owner/name); give it again for more. Default: every repo's.",
)
@click.option("--yes", is_flag=True, help="Delete and put to sleep. Without it, only say what would be done.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_connection_options
def gc(
    repos: tuple[str, ...],
    yes: bool,
    output: str,
    token: str,
    api_url: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Delete the previews whose PR is closed or gone, whose time limit passed or whose repo is gone, and
    put idle ones to sleep.

    A dry run unless --yes. Only namespaces with previewbot's labels and a matching repo annotation are
    looked at; GitHub is asked once per page of each repo's open PRs, not once per preview.
    """
    from previewbot import render
    from previewbot.core.gc import Verdict
    from previewbot.core.previews import Settings
    from previewbot.wiring import Connection, build_previews

    with _plainly():
        previews = build_previews(
            Connection(token=token, api_url=api_url, kubeconfig=kubeconfig, kube_context=kube_context),
            Settings(workspace=Path.cwd()),
            with_runner=False,
        )
        decisions, failures = previews.sweep(only_repos=repos, act=yes)
        rows = [
            {
                "namespace": d.namespace.name,
                "repo": d.repo,
                "pr": d.number,
                "action": str(d.verdict) if yes or d.verdict is Verdict.STAYS else f"would {d.verdict}",
                "reason": str(d.reason),
                "expires": d.expires_at.isoformat() if d.expires_at else None,
            }
            for d in decisions
        ]
        if output == "json":
            click.echo(json.dumps(rows, indent=2))
        else:
            shown = [["-" if value is None else str(value) for value in row.values()] for row in rows]
            header = [key.upper() for key in rows[0]] if rows else []
            click.echo(render.aligned_table(header, shown) if rows else "previewbot has no previews here.\n", nl=False)
        if not yes and any(d.verdict is not Verdict.STAYS for d in decisions) and output == "table":
            click.echo("Dry run: nothing was changed. Run again with --yes to act.")
    from previewbot.redact import redactor

    for failure in failures:
        click.echo(f"✘ {redactor.redact(failure)}", err=True)
    sys.exit(1 if failures else 0)


@main.command("action")
@click.option(
    "--config",
    "config_path",
    envvar="INPUT_CONFIG",
    default=".preview.yml",
    show_default=True,
    help="Path of .preview.yml in the working directory.",
)
@click.option(
    "--working-directory",
    envvar="INPUT_WORKING_DIRECTORY",
    default=".",
    show_default=True,
    help="Folder of the checkout that holds the config and manifests.",
)
@click.option(
    "--mode",
    envvar="INPUT_MODE",
    type=click.Choice(["run", "gate"]),
    default="run",
    show_default=True,
    help="gate: only say which commit a comment lets the workflow build (output sha), changing nothing.",
)
@_connection_options
def action_command(
    config_path: str,
    working_directory: str,
    mode: str,
    token: str,
    api_url: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """What action.yml runs: handle this workflow run's event.

    Reads GITHUB_EVENT_NAME and GITHUB_EVENT_PATH as the runner sets them, writes the step's
    outputs (status, url, namespace) and summary, and exits non-zero when the preview failed.
    """
    from previewbot import action
    from previewbot.errors import PreviewbotError
    from previewbot.wiring import Connection, build_previews

    try:
        runner = action.Runner.from_env(os.environ)
    except PreviewbotError as error:
        action.annotate_error(str(error))
        sys.exit(2)
    try:
        previews = build_previews(
            Connection(token=token, api_url=api_url, kubeconfig=kubeconfig, kube_context=kube_context),
            runner.settings(working_directory=working_directory, config_path=config_path),
            # The gate asks only GitHub: it needs no kubeconfig and runs nothing.
            with_runner=mode != "gate",
            with_cluster=mode != "gate",
        )
        sys.exit(action.gate(runner, previews) if mode == "gate" else action.run(runner, previews))
    except PreviewbotError as error:
        action.annotate_error(str(error))
        sys.exit(1)
    except Exception as error:
        # A deploy run ends any error as a failed preview itself; this is what failed around one. Its
        # traceback goes through the log's redacting filter, never Python's own printer.
        logging.getLogger("previewbot").exception("previewbot failed unexpectedly")
        action.annotate_error(f"previewbot failed unexpectedly: {type(error).__name__}: {error}")
        sys.exit(1)


@main.command()
def schema() -> None:
    """Print the JSON Schema of .preview.yml (for editors and CI checks)."""
    from previewbot.config import config_schema

    click.echo(json.dumps(config_schema(), indent=2))


@main.command()
@click.option("--app-id", envvar="PREVIEWBOT_APP_ID", required=True, show_envvar=True, help="The GitHub App's id.")
@click.option(
    "--private-key-file",
    envvar="PREVIEWBOT_PRIVATE_KEY_FILE",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    show_envvar=True,
    help="The App's private key (PEM), as GitHub generated it.",
)
@click.option(
    "--webhook-secret-file",
    envvar="PREVIEWBOT_WEBHOOK_SECRET_FILE",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    show_envvar=True,
    help="A file holding the webhook secret set on the App.",
)
@click.option("--api-url", envvar="GITHUB_API_URL", default=None, show_envvar=True, help="GitHub's API address.")
@click.option("--server-url", envvar="GITHUB_SERVER_URL", default="https://github.com", show_envvar=True)
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="Default: the pod's service account.")
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server in a pod listens on all
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 64), help="Jobs run at once.")
@click.option("--queue-capacity", default=1000, show_default=True, type=click.IntRange(1), help="Jobs that may wait.")
@click.option(
    "--lease-namespace",
    envvar="POD_NAMESPACE",
    required=True,
    show_envvar=True,
    help="Where the per-PR Leases live: the server's own namespace.",
)
@click.option("--holder", envvar="POD_NAME", default=None, show_envvar=True, help="This replica's name in the Leases.")
@click.option("--resync-interval", default=600.0, show_default=True, type=float, help="Seconds; 0: at start only.")
@click.option("--resync/--no-resync", default=True, show_default=True, help="Catch up on missed deliveries at all.")
@click.option(
    "--rbac-name",
    envvar="PREVIEWBOT_RBAC_NAME",
    default=None,
    show_envvar=True,
    help="NAME of the RBAC applied for previewbot (the chart's rbac.name); default: previewbot's.",
)
@click.option("--shutdown-grace", default=25.0, show_default=True, type=float, help="Seconds running jobs get.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object a line, with the delivery and the PR it is about.",
)
def serve(
    app_id: str,
    private_key_file: Path,
    webhook_secret_file: Path,
    api_url: str | None,
    server_url: str,
    kubeconfig: str | None,
    host: str,
    port: int,
    workers: int,
    queue_capacity: int,
    lease_namespace: str,
    holder: str | None,
    resync_interval: float,
    resync: bool,
    rbac_name: str | None,
    shutdown_grace: float,
    log_format: str,
) -> None:
    """Run the webhook server of the GitHub App: POST /webhook, GET /healthz, /readyz and /metrics."""
    import signal
    import socket

    import uvicorn

    from previewbot.adapters.github import DEFAULT_API_URL
    from previewbot.adapters.github_app import GitHubApp
    from previewbot.adapters.http import HttpProbe
    from previewbot.adapters.kubernetes import connect
    from previewbot.redact import redactor
    from previewbot.server import logs
    from previewbot.server.app import Server, ServerSettings

    logs.configure(json_lines=log_format == "json")
    private_key = private_key_file.read_text()
    secret = webhook_secret_file.read_bytes().strip()
    redactor.add(private_key)
    redactor.add(secret.decode(errors="replace"))
    server = Server(
        app=GitHubApp(app_id=app_id, private_key=private_key, api_url=api_url or DEFAULT_API_URL),
        cluster=connect(kubeconfig=kubeconfig, rbac_name=rbac_name),
        probe=HttpProbe(),
        settings=ServerSettings(
            webhook_secret=secret,
            lease_namespace=lease_namespace,
            holder=holder or socket.gethostname(),
            workers=workers,
            queue_capacity=queue_capacity,
            resync_interval=resync_interval if resync else None,
            shutdown_grace=shutdown_grace,
            server_url=server_url,
        ),
    )
    # uvicorn shuts down on SIGTERM, then raises the signal again for the handler it found: a shutdown
    # that got that far was clean, and exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(server.asgi, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


# ---------------------------------------------------------------- on demand, without GitHub


def _on_demand_options(command: F) -> F:
    options = [
        click.argument(
            "checkout", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".", required=False
        ),
        click.option("--name", default=None, help="The preview's name. Default: the checkout's branch."),
        click.option("--repo", default=None, help="owner/name. Default: from the checkout's origin remote."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _repo_of(checkout: Path, repo: str | None) -> str:
    from previewbot.checkout import read_repo

    found = repo or read_repo(checkout)
    if not found or not re.fullmatch(r"[^/\s]+/[^/\s]+", found):
        raise click.UsageError(f"cannot tell the repo of {checkout} from an origin remote: pass --repo owner/name")
    return found


def _on_demand(checkout: Path, *, name: str | None, repo: str | None, sha: str | None) -> OnDemand:
    """The preview of a checkout: its repo, name and commit, from the options or else from its .git files."""
    from previewbot import naming
    from previewbot.checkout import Head, read_head
    from previewbot.errors import UserError
    from previewbot.model import OnDemand

    try:
        head = read_head(checkout)
    except UserError as error:
        if not (name and sha):
            raise click.UsageError(str(error)) from error
        head = Head(sha=None, branch="")
    if not (name or head.branch):
        raise click.UsageError(f"HEAD of {checkout} is on no branch: pass --name")
    commit = sha or head.sha
    if not commit:
        raise click.UsageError(f"the branch of {checkout} has no commit yet: pass --sha")
    return OnDemand(
        repo=_repo_of(checkout, repo),
        name=naming.on_demand_name(name or head.branch),
        head_sha=commit.lower(),
        head_ref=head.branch or name or "",
    )


@contextlib.contextmanager
def _plainly() -> Iterator[None]:
    """A previewbot error (an unreachable cluster, a bad kubeconfig) ends the command with its message, exit 1.

    Anything else that breaks is logged with its traceback through the redacting log handler, never printed
    raw: a traceback can quote a token or a kubeconfig.
    """
    import logging

    from previewbot.errors import PreviewbotError
    from previewbot.redact import redactor

    try:
        yield
    except PreviewbotError as error:
        click.echo(f"✘ {redactor.redact(str(error))}", err=True)
        sys.exit(1)
    except Exception:
        logging.getLogger("previewbot").exception("previewbot broke")
        sys.exit(1)


def _duration(_context: click.Context, _parameter: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    from previewbot.config import parse_duration

    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@main.command()
@_on_demand_options
@click.option("--sha", default=None, help="The commit to pin images to (${SHA}). Default: the checkout's HEAD.")
@click.option("--tag", default=None, help="Pin every image in `images` to this tag, instead of the config's template.")
@click.option("--ttl", default=None, callback=_duration, help="Time limit after this `up`, such as 8h or 2d.")
@click.option("--no-tests", is_flag=True, help="Deploy without running the end-to-end tests.")
@click.option("--config", "config_path", default=".preview.yml", show_default=True)
@_cluster_options
def up(
    checkout: Path,
    name: str | None,
    repo: str | None,
    sha: str | None,
    tag: str | None,
    ttl: float | None,
    no_tests: bool,
    config_path: str,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Deploy a checkout as a preview, with no pull request and no GitHub.

    The namespace is named after the branch (or --name) and labelled as previewbot's on-demand
    preview, so `list`, `down`, the scheduled sweep and the time limit (the config's `ttl`, else
    one day) apply to it. In the config, ${PR_NUMBER} is the preview's name. The steps show as they
    run, then the URL and the test results; the exit code is 1 when the preview failed. Run it
    again after a change: only what changed is redeployed.
    """
    from previewbot.core.previews import Settings
    from previewbot.core.reporting import TerminalSink
    from previewbot.model import Up
    from previewbot.wiring import build_on_demand, connect_cluster

    if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{7,40}", sha):
        raise click.BadParameter(f"{sha!r} is not a commit SHA", param_hint="--sha")
    preview = _on_demand(checkout, name=name, repo=repo, sha=sha)
    with _plainly():
        previews = build_on_demand(
            connect_cluster(kubeconfig, kube_context),
            Settings(workspace=checkout.resolve(), config_path=config_path),
            sink=TerminalSink(write=functools.partial(click.echo, nl=False)),
        )
        outcome = previews.handle(Up(preview=preview, tag=tag, ttl=ttl, tests=not no_tests))
    _exit(outcome)


@main.command()
@_on_demand_options
@_cluster_options
def down(checkout: Path, name: str | None, repo: str | None, kubeconfig: str | None, kube_context: str | None) -> None:
    """Delete the on-demand preview of a checkout's branch (or --name).

    Only a namespace labelled as previewbot's on-demand preview of that name in that repo is deleted.
    """
    from previewbot import naming
    from previewbot.core.previews import Settings
    from previewbot.core.reporting import TerminalSink
    from previewbot.model import Down, OnDemandRef
    from previewbot.wiring import build_on_demand, connect_cluster

    if name:
        ref = OnDemandRef(repo=_repo_of(checkout, repo), name=naming.on_demand_name(name))
    else:
        ref = _on_demand(checkout, name=None, repo=repo, sha=None).ref
    with _plainly():
        previews = build_on_demand(
            connect_cluster(kubeconfig, kube_context), Settings(workspace=checkout), sink=TerminalSink(write=click.echo)
        )
        outcome = previews.handle(Down(ref=ref))
    click.echo(outcome.message)
    _exit(outcome)


@main.command("list")
@click.option(
    "--output", type=click.Choice(["table", "json"]), default="table", show_default=True, help="How to print them."
)
@_cluster_options
def list_command(output: str, kubeconfig: str | None, kube_context: str | None) -> None:
    """Show every preview previewbot has in the cluster, PRs' and on-demand, of every repo."""
    from previewbot import render
    from previewbot.core.inventory import previews_in
    from previewbot.wiring import connect_cluster

    with _plainly():
        entries = previews_in(connect_cluster(kubeconfig, kube_context))
    if output == "json":
        click.echo(json.dumps(render.preview_records(entries), indent=2))
    else:
        click.echo(render.render_preview_table(entries, now=datetime.now(UTC)), nl=False)
