"""End-to-end tests against a preview, as users configure them: a Job in the namespace, or a runner command."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from previewbot import render
from previewbot.model import Phase
from tests.harness import (
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    comment_event,
    pr_event,
    preview_site,
    sticky,
    web_deployment,
)

SHA_1 = "1" * 40
SHA_2 = "2" * 40

PASSING_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="e2e" tests="3" failures="0" errors="0" skipped="1" time="4.2">
<testcase classname="e2e.home" name="test_home_page_loads" time="1.5"/>
<testcase classname="e2e.login" name="test_login_works" time="2.7"/>
<testcase classname="e2e.admin" name="test_admin_panel" time="0"><skipped message="no admin in previews"/></testcase>
</testsuite></testsuites>"""

FAILING_REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="e2e" tests="2" failures="1" errors="0" time="3.0">
<testcase classname="e2e.home" name="test_home_page_loads" time="1.0"/>
<testcase classname="e2e.checkout" name="test_checkout_total" time="2.0">
<failure message="expected total 42.00, got 41.99">AssertionError: expected total 42.00, got 41.99</failure>
</testcase></testsuite></testsuites>"""


def writes_report(report: str, *, then: str = "exit 0") -> str:
    """A test script that writes report to /tmp/junit.xml, like a test runner would, then ends."""
    return f"echo running e2e against $PREVIEW_URL\ncat > /tmp/junit.xml <<'EOF'\n{report}\nEOF\n{then}"


def job_config(prefix: str, site: str, script: str, *, image: str = "busybox:1.36", timeout: str = "60s") -> str:
    quoted = script.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f"""version: 1
manifests: [deploy/]
url: {site}/pr-${{PR_NUMBER}}
smoke:
  timeout: 5s
tests:
  job:
    image: {image}
    command: [sh, -c, "{quoted}"]
    report: /tmp/junit.xml
  timeout: {timeout}
namespace:
  prefix: {prefix}
  network_policy: none
"""


@pytest.fixture
def checkout(checkout: Checkout) -> Checkout:
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


def e2e_status(github: Any, sha: str) -> Any:
    return next(s for s in github.statuses(REPO, sha) if s.context == "previewbot/e2e")


def test_all_tests_pass(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    assert outcome.report is not None
    tests = outcome.report.tests
    assert tests is not None
    assert tests.passed
    assert tests.report is not None
    assert len(tests.report.cases) == 3
    comment = sticky(github)
    assert "2 passed" in comment or "| 2 |" in comment
    assert "running e2e against" in comment
    status = e2e_status(github, SHA_1)
    assert status.state == "success"
    assert "2 passed" in status.description


def test_the_test_job_runs_in_a_namespace_held_to_pod_security_restricted(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    config = job_config(prefix, site, writes_report(PASSING_REPORT)) + "  pod_security: restricted\n"
    checkout.write(".preview.yml", config)
    base = pr_event("opened")["pull_request"]["base"]["ref"]
    github.add_file(REPO, ".preview.yml", config, ref=base)

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY, outcome.message
    assert e2e_status(github, SHA_1).state == "success"


def test_a_report_without_a_final_newline_and_with_crlf_endings_is_read_whole(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    report = '<testsuites>\\r\\n<testsuite name="e2e"><testcase name="home page loads"/></testsuite>\\r\\n</testsuites>'
    script = f"printf '{report}' > /tmp/junit.xml\nprintf 'ran 1 test, no newline after'"
    checkout.write(".preview.yml", job_config(prefix, site, script))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    assert outcome.report is not None
    tests = outcome.report.tests
    assert tests is not None
    assert tests.problem is None
    assert tests.report is not None
    assert [case.name for case in tests.report.cases] == ["home page loads"]
    assert tests.log_tail == "ran 1 test, no newline after"


def test_failed_tests_are_named_with_their_message(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(FAILING_REPORT, then="exit 1")))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "test_checkout_total" in comment
    assert "expected total 42.00, got 41.99" in comment
    assert e2e_status(github, SHA_1).state == "failure"
    [deployment] = github.deployments(REPO)
    assert deployment.state == "failure"


def test_optional_tests_report_but_do_not_fail_the_preview(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    config = job_config(prefix, site, writes_report(FAILING_REPORT, then="exit 1"))
    checkout.write(".preview.yml", config.replace("  timeout: 60s\n", "  timeout: 60s\n  required: false\n"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    assert e2e_status(github, SHA_1).state == "failure"


def test_a_test_image_that_cannot_be_pulled_is_not_a_test_failure(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(
        ".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT), image="registry.invalid/e2e:1")
    )

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "never ran" in comment
    assert "ImagePullBackOff" in comment or "ErrImagePull" in comment
    assert "never ran" in e2e_status(github, SHA_1).description


def test_a_url_that_never_answers_fails_before_the_tests(
    bot: Bot, github: Any, checkout: Checkout, prefix: str
) -> None:
    with preview_site(status=503) as broken:
        checkout.write(".preview.yml", job_config(prefix, broken, writes_report(PASSING_REPORT)))
        [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "never answered" in comment
    assert "503" in comment
    assert "never answered" in e2e_status(github, SHA_1).description


def test_tests_that_run_too_long_time_out(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, "echo starting; sleep 3600", timeout="3s"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert "did not finish in 3s" in sticky(github)


def test_a_job_that_exits_0_without_a_report_says_so(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, "echo all good, I promise"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert "without writing their JUnit report" in sticky(github)


def test_a_malformed_report_is_reported_precisely(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report("<testsuites><testsuite>")))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "junit.xml" in comment
    assert "line" in comment


def test_a_push_mid_run_supersedes_the_old_tests(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, "echo slow; sleep 3600", timeout="120s"))
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_1)
    first: list[Any] = []
    slow = threading.Thread(target=lambda: first.extend(bot.on("pull_request", pr_event("opened", sha=SHA_1))))
    slow.start()
    deadline = time.monotonic() + 60
    while "End-to-end tests" not in _sticky_or_empty(github) and time.monotonic() < deadline:
        time.sleep(0.05)

    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA_2)  # the push, as GitHub then shows the PR
    [second] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))
    slow.join(timeout=120)

    assert second.status == Phase.READY
    assert [o.status for o in first] == ["superseded"]
    comment = sticky(github)
    assert SHA_2[:7] in comment
    assert "did not finish" not in comment


def _sticky_or_empty(github: Any) -> str:
    bodies = [c.body for c in github.comments(REPO, PR_NUMBER) if render.is_preview_comment(c.body)]
    return bodies[0] if bodies else ""


def command_config(prefix: str, site: str, command: str, *, report: str | None) -> str:
    report_line = f"  report: {report}\n" if report else ""
    return f"""version: 1
manifests: [deploy/]
url: {site}/pr-${{PR_NUMBER}}
tests:
  command: {command!r}
{report_line}  timeout: 60s
namespace:
  prefix: {prefix}
  network_policy: none
"""


def test_a_runner_command_with_a_report(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write("e2e.sh", writes_report(FAILING_REPORT, then="exit 1").replace("/tmp/junit.xml", "junit.xml"))
    checkout.write(".preview.yml", command_config(prefix, site, "bash e2e.sh", report="junit.xml"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "test_checkout_total" in comment
    assert f"running e2e against {site}/pr-{PR_NUMBER}" in comment


def test_a_runner_report_that_links_out_of_the_checkout_is_refused_unread(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str, tmp_path: Path
) -> None:
    outside = tmp_path / "credentials.xml"
    outside.write_text(PASSING_REPORT.replace("test_login_works", "s3cr3t-on-the-runner"))
    checkout.write(".preview.yml", command_config(prefix, site, f"ln -s {outside} junit.xml", report="junit.xml"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "tests.report: junit.xml is outside the repo (a link out of it)" in comment
    assert "s3cr3t-on-the-runner" not in comment


def test_a_runner_command_without_a_report(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write(".preview.yml", command_config(prefix, site, 'test "$PR_NUMBER" = 2 && echo ok', report=None))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    assert e2e_status(github, SHA_1).state == "success"


def test_a_runner_command_that_does_not_exist(
    bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str
) -> None:
    checkout.write(".preview.yml", command_config(prefix, site, "run-my-e2e-suite --fast", report=None))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    assert "command not found: run-my-e2e-suite" in sticky(github)


def test_a_redeploy_runs_the_tests_again(bot: Bot, github: Any, checkout: Checkout, prefix: str, site: str) -> None:
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(PASSING_REPORT)))
    github.set_permission(REPO, "Codertocat", "write")
    bot.on("pull_request", pr_event("opened"))
    sha = pr_event("opened")["pull_request"]["head"]["sha"]
    checkout.write(".preview.yml", job_config(prefix, site, writes_report(FAILING_REPORT, then="exit 1")))
    _, event = comment_event(github, "/preview redeploy")

    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == Phase.FAILED
    assert [s.state for s in github.statuses(REPO, sha) if s.context == "previewbot/e2e"] == ["failure", "success"]
    assert "test_checkout_total" in sticky(github)
