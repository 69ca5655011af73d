"""The end-to-end tests of a preview: smoke check, then a Job in the namespace or a runner command.

Every way the tests can go wrong is told as what it is: a URL that never answers, a test pod
that never ran, a timeout, a missing or malformed report are problems, not test failures.

The Job hands its JUnit report out of the pod with no extra infrastructure: when
`tests.job.report` is set, previewbot wraps the container's command in `sh -c` so that, after
the tests, the report file is printed to the log between two marker lines, and reads it back
from the pod's log. The test image needs a POSIX shell and `cat`.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from previewbot import junit, manifests, naming
from previewbot.config import PodSecurityLevel, PreviewConfig, Tests
from previewbot.core.ports import Cluster, CommandRunner, Progress, UrlProbe
from previewbot.errors import UserError
from previewbot.model import TestReport, TestRun, WorkloadDiagnosis
from previewbot.paths import path_in_repo

LOG_TAIL_LINES = 80
UNPRIVILEGED_USER = 65532  # what distroless images call "nonroot"; any user id but 0 would do


def e2e_env(variables: Mapping[str, str]) -> dict[str, str]:
    """The variables every test run gets, by the names the docs promise."""
    return {
        "PREVIEW_URL": variables.get("PREVIEW_URL", ""),
        "PREVIEW_NAMESPACE": variables["NAMESPACE"],
        "PR_NUMBER": variables["PR_NUMBER"],
        "SHA": variables["SHA"],
    }


def tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def job_name(sha: str) -> str:
    return f"e2e-{sha[:7]}"


def wrap_for_report(command: list[str], report_path: str, markers: junit.ReportMarkers) -> list[str]:
    """A command that runs `command`, then prints report_path between the markers, keeping the exit code.

    Each marker is printed after a line break, so it stands on a line of its own whatever the
    tests' output and the report end with.
    """
    script = (
        '"$@"; code=$?; '
        f"printf '\\n%s\\n' {shlex.quote(markers.begin)}; "
        f"cat {shlex.quote(report_path)} 2>/dev/null; "
        f"printf '\\n%s\\n' {shlex.quote(markers.end)}; "
        'exit "$code"'
    )
    return ["sh", "-c", script, "previewbot-e2e", *command]


def e2e_job(
    config: PreviewConfig,
    *,
    variables: Mapping[str, str],
    labels: Mapping[str, str],
    markers: junit.ReportMarkers,
    pod_security: PodSecurityLevel = "baseline",
) -> dict[str, Any]:
    """The Job manifest for this deploy's tests, fit for the namespace's Pod Security level."""
    tests = config.tests
    assert tests is not None
    assert tests.job is not None
    spec = tests.job
    container: dict[str, Any] = {
        "name": "e2e",
        "image": spec.image,
        "env": [{"name": k, "value": v} for k, v in {**e2e_env(variables), **spec.env}.items()],
    }
    if spec.report:
        # The config requires a command with a report: the image's own entrypoint cannot be wrapped.
        container["command"] = wrap_for_report([*(spec.command or []), *(spec.args or [])], spec.report, markers)
    else:
        if spec.command:
            container["command"] = spec.command
        if spec.args:
            container["args"] = spec.args
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if pod_security == "restricted":
        pod_spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": UNPRIVILEGED_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    job_labels = {**labels, naming.COMPONENT_LABEL: "tests"}
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(variables["SHA"]),
            "namespace": variables["NAMESPACE"],
            "labels": job_labels,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(tests.timeout),
            "ttlSecondsAfterFinished": 24 * 3600,
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }
    return manifests.pin_images(job, config.images, variables)


def _report_from(text: str | None, *, source: str) -> tuple[TestReport | None, str | None]:
    if text is None:
        return None, None
    try:
        return junit.parse_junit(text, source=source), None
    except junit.ReportError as error:
        return None, str(error)


def _problem(problem: str, *, log: str, seconds: float, diagnosis: WorkloadDiagnosis | None = None) -> TestRun:
    """Tests that could not say pass or fail, and why."""
    return TestRun(passed=False, problem=problem, log_tail=tail(log), seconds=seconds, diagnosis=diagnosis)


def _timed_out(tests: Tests) -> str:
    return f"the tests did not finish in {tests.timeout:.0f}s"


def _outcome(
    *,
    exit_ok: bool,
    report: TestReport | None,
    problem: str | None,
    log: str,
    seconds: float,
    wanted_report: bool,
) -> TestRun:
    if problem is None and wanted_report and report is None:
        problem = "the tests ended without writing their JUnit report" + (
            "" if exit_ok else " (and exited with an error)"
        )
    passed = exit_ok and problem is None and (report is None or not report.failures)
    return TestRun(passed=passed, report=report, problem=problem, log_tail=tail(log), seconds=seconds)


def run_tests(
    config: PreviewConfig,
    *,
    cluster: Cluster,
    probe: UrlProbe,
    runner: CommandRunner | None,
    workspace: Path,
    variables: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Progress | None = None,
    pod_security: PodSecurityLevel = "baseline",
    stop: threading.Event | None = None,
) -> TestRun:
    """Smoke-check the URL, then run the configured tests; never raises for a test outcome.

    Setting `stop` ends a test Job early (a newer commit took over); its outcome then means nothing.
    """
    tests = config.tests
    assert tests is not None
    began = time.monotonic()
    url = variables.get("PREVIEW_URL") or ""
    if url:
        target = url.rstrip("/") + "/" + config.smoke.path.lstrip("/")
        reason = probe.wait_until_answers(
            target, expect_status=config.smoke.expect_status, timeout=config.smoke.timeout, progress=progress
        )
        if reason is not None:
            return TestRun(passed=False, problem=f"the preview URL never answered: {reason}", seconds=0.0)
    if runner is not None and tests.command:
        return _run_command(tests, runner=runner, workspace=workspace, variables=variables, began=began)
    if tests.job is not None:
        return _run_job(
            config,
            cluster=cluster,
            variables=variables,
            labels=labels,
            progress=progress,
            began=began,
            pod_security=pod_security,
            stop=stop,
        )
    return TestRun(
        passed=False,
        problem=(
            "tests.command did not run: it runs only on the GitHub Action's runner, in a checkout of the PR, "
            "never for a PR from a fork (a deploy when a preview slot frees has no checkout: `/preview retest` "
            "runs it); tests.job runs everywhere"
        ),
    )


def _run_command(
    tests: Tests, *, runner: CommandRunner, workspace: Path, variables: Mapping[str, str], began: float
) -> TestRun:
    assert tests.command is not None
    code, output = runner.run(tests.command, env=e2e_env(variables), cwd=str(workspace), timeout=tests.timeout)
    seconds = time.monotonic() - began
    if code is None:
        return _problem(_timed_out(tests), log=output, seconds=seconds)
    if code == 127:
        program = (tests.command.split() or [tests.command])[0]
        return _problem(f"command not found: {program}", log=output, seconds=seconds)
    report, problem = None, None
    if tests.report:
        try:
            path = path_in_repo(workspace, tests.report, key="tests.report", must_exist=False, refusal=UserError)
        except UserError as refused:
            return _problem(str(refused), log=output, seconds=seconds)
        text = path.read_text(errors="replace") if path.is_file() else None
        report, problem = _report_from(text, source=tests.report)
    return _outcome(
        exit_ok=code == 0,
        report=report,
        problem=problem,
        log=output,
        seconds=seconds,
        wanted_report=bool(tests.report),
    )


def _run_job(
    config: PreviewConfig,
    *,
    cluster: Cluster,
    variables: Mapping[str, str],
    labels: Mapping[str, str],
    progress: Progress | None,
    began: float,
    pod_security: PodSecurityLevel,
    stop: threading.Event | None,
) -> TestRun:
    tests = config.tests
    assert tests is not None
    assert tests.job is not None
    markers = junit.ReportMarkers.new()
    job = e2e_job(config, variables=variables, labels=labels, markers=markers, pod_security=pod_security)
    namespace = variables["NAMESPACE"]
    # A push supersedes the tests of the commit before it.
    cluster.delete_jobs(
        namespace,
        label_selector=f"{naming.COMPONENT_LABEL}=tests,{naming.MANAGED_BY_LABEL}={naming.MANAGED_BY_VALUE}",
        keep=job["metadata"]["name"],
    )
    outcome = cluster.run_job(namespace, job, timeout=tests.timeout, progress=progress, stop=stop)
    seconds = time.monotonic() - began
    if outcome.diagnosis is not None:
        never_ran = f"the test pod never ran: {outcome.diagnosis.summary}"
        return _problem(never_ran, log=outcome.log, seconds=seconds, diagnosis=outcome.diagnosis)
    if outcome.log_unreadable is not None:
        # A report is taken only from a log read whole; and the exit code alone cannot say what a report would.
        unreadable = f"the test log could not be read: {outcome.log_unreadable}"
        if outcome.timed_out:
            return _problem(f"{_timed_out(tests)}; {unreadable}", log=outcome.log, seconds=seconds)
        if tests.job.report:
            return _problem(f"could not read the report: {unreadable}", log=outcome.log, seconds=seconds)
        return _outcome(
            exit_ok=outcome.succeeded,
            report=None,
            problem=None,
            log="\n".join(filter(None, [outcome.log.rstrip("\n"), f"[{unreadable}]"])),
            seconds=seconds,
            wanted_report=False,
        )
    report_text, log = junit.split_report_from_log(outcome.log, markers)
    if report_text is not None and not report_text.strip():
        report_text = None  # the wrapper found no report file to print
    if outcome.timed_out:
        return _problem(_timed_out(tests), log=log, seconds=seconds)
    report, problem = _report_from(report_text, source=f"job/{job['metadata']['name']}: {tests.job.report}")
    return _outcome(
        exit_ok=outcome.succeeded,
        report=report,
        problem=problem,
        log=log,
        seconds=seconds,
        wanted_report=bool(tests.job.report),
    )
