"""The PR comment, the job summary and the short replies, as a person reads them on GitHub."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from previewbot.model import (
    ContainerProblem,
    Endpoint,
    EndpointKind,
    ObjectRef,
    Phase,
    PreviewReport,
    PrRef,
    Readiness,
    StepTiming,
    TestCase,
    TestOutcome,
    TestReport,
    TestRun,
    WorkloadDiagnosis,
    WorkloadState,
)
from previewbot.redact import redactor
from previewbot.render import (
    COMMENT_LIMIT,
    COMMENT_MARKER,
    SUMMARY_LIMIT,
    is_preview_comment,
    render_approve_again,
    render_comment,
    render_fork_waiting,
    render_refusal,
    render_status_reply,
    render_summary,
    render_terminal,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 11, 22, 4, 0, 5, tzinfo=UTC)
ALL_COMMANDS = (
    "/preview redeploy",
    "/preview retest",
    "/preview destroy",
    "/preview keep",
    "/preview status",
    "/preview help",
)
WEB = ObjectRef(api_version="apps/v1", kind="Deployment", name="web")


def preview(**changes: object) -> PreviewReport:
    report = PreviewReport(
        ref=PrRef(repo="acme/shop", number=12),
        phase=Phase.READY,
        head_sha=SHA,
        namespace="preview-shop-pr-12",
        url="https://pr-12.preview.acme.dev",
        updated_at=NOW,
        steps=(
            StepTiming(name="Create namespace", started=NOW, seconds=1.25, ok=True),
            StepTiming(name="Apply manifests", started=NOW, seconds=3.5, ok=True),
        ),
    )
    return replace(report, **changes)


def diagnosis(*, log_tail: str = "", events: tuple[str, ...] = (), pod: str = "web-7d9f") -> WorkloadDiagnosis:
    return WorkloadDiagnosis(
        workload=WEB,
        summary="0/1 replicas available after 300s",
        problems=(
            ContainerProblem(
                pod=pod,
                container="app",
                reason="CrashLoopBackOff",
                message="back-off 5m0s restarting failed container=app",
                restarts=7,
                log_tail=log_tail,
            ),
        ),
        events=events,
    )


def failing_tests(count: int, *, message: str = "AssertionError: expected 200\nassert 503 == 200") -> TestRun:
    cases = (
        TestCase(name="test_home", classname="e2e.test_site", seconds=0.5),
        TestCase(name="test_old", classname="e2e.test_site", outcome=TestOutcome.SKIPPED),
        *(
            TestCase(
                name=f"test_page_{index}",
                classname="e2e.test_pages",
                outcome=TestOutcome.ERROR if index == 0 else TestOutcome.FAILED,
                message=message,
            )
            for index in range(count)
        ),
    )
    return TestRun(
        passed=False, report=TestReport(cases=cases, seconds=12.0), log_tail="collected\nFAILED", seconds=42.0
    )


def assert_balanced(markdown: str) -> None:
    """Every code fence is closed, and every <details> outside code is closed too."""
    fence: str | None = None
    details = 0
    for line in markdown.splitlines():
        run = re.match(r"^(`{3,})", line)
        if fence is None and run:
            fence = run.group(1)
        elif fence is not None and line.rstrip() == fence:
            fence = None
        elif fence is None:
            details += line.count("<details>") - line.count("</details>")
    assert fence is None, "a code block is left open"
    assert details == 0, "a <details> is left open"


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---------------------------------------------------------------- phases


@pytest.mark.parametrize(
    ("changes", "heading", "commands"),
    [
        (
            {"phase": Phase.PENDING, "url": None, "note": "Waiting for a maintainer's approval."},
            "### ⏳ Preview pending",
            ALL_COMMANDS,
        ),
        (
            {"phase": Phase.DEPLOYING, "running": "Wait for rollout"},
            "### 🚧 Deploying: Wait for rollout",
            ALL_COMMANDS,
        ),
        (
            {"phase": Phase.TESTING, "running": "End-to-end tests"},
            "### 🧪 Testing: End-to-end tests",
            ALL_COMMANDS,
        ),
        ({"phase": Phase.READY}, "### ✅ Preview ready", ALL_COMMANDS),
        ({"phase": Phase.FAILED, "error": "boom"}, "### ❌ Preview failed", ALL_COMMANDS),
        (
            {"phase": Phase.SLEEPING, "note": "Asleep after no activity since 2026-06-01T12:00:00Z."},
            "### 💤 Preview asleep",
            ("/preview wake", "/preview destroy", "/preview keep", "/preview status", "/preview help"),
        ),
        (
            {"phase": Phase.DESTROYED, "note": "Destroyed: the PR was merged."},
            "### 🗑️ Preview destroyed",
            ("/preview redeploy",),
        ),
    ],
)
def test_each_phase_has_its_status_line_and_commands(
    changes: dict[str, object], heading: str, commands: tuple[str, ...]
) -> None:
    comment = render_comment(preview(**changes))

    assert comment.startswith(COMMENT_MARKER + "\n" + heading + "\n")
    assert is_preview_comment(comment)
    footer = comment.rstrip().splitlines()[-1]
    assert footer == "<sub>Commands: " + " · ".join(f"`{command}`" for command in commands) + "</sub>"
    assert_balanced(comment)


def test_the_facts_table_links_the_url_and_the_commit() -> None:
    eastern = timezone(timedelta(hours=-5))
    comment = render_comment(
        preview(updated_at=datetime(2026, 11, 21, 23, 0, 5, tzinfo=eastern)),
        server_url="https://ghe.acme.dev/",
    )

    assert "| **URL** | [https://pr-12.preview.acme.dev](<https://pr-12.preview.acme.dev>) |" in comment
    assert "| **Namespace** | `preview-shop-pr-12` |" in comment
    assert f"| **Commit** | [`0123456`](<https://ghe.acme.dev/acme/shop/commit/{SHA}>) |" in comment
    assert "| **Updated** | 2026-11-22 04:00:05 UTC |" in comment


def test_a_naive_time_is_taken_as_utc() -> None:
    assert "| **Updated** | 2026-11-22 04:00:05 UTC |" in render_comment(preview(updated_at=NOW.replace(tzinfo=None)))


def test_a_destroyed_preview_does_not_link_its_dead_url() -> None:
    comment = render_comment(preview(phase=Phase.DESTROYED))

    assert "| **URL** | `https://pr-12.preview.acme.dev` |" in comment
    assert "](<https://pr-12" not in comment


def test_the_steps_show_their_timings_and_the_running_step() -> None:
    steps = (
        StepTiming(name="Create namespace", started=NOW, seconds=1.25, ok=True),
        StepTiming(name="Apply manifests", started=NOW, seconds=125, ok=True),
        StepTiming(name="Wait for rollout", started=NOW),
    )
    comment = render_comment(preview(phase=Phase.DEPLOYING, running="Wait for rollout", steps=steps))

    assert "| Step | Time |\n| --- | --- |\n" in comment
    assert "| ✅ Create namespace | 1.2 s |" in comment
    assert "| ✅ Apply manifests | 2 min 5 s |" in comment
    assert "| 🔄 **Wait for rollout** | running… |" in comment


def test_a_running_step_not_yet_in_the_steps_is_shown_running() -> None:
    comment = render_comment(preview(phase=Phase.TESTING, running="End-to-end tests"))

    assert comment.index("| ✅ Apply manifests") < comment.index("| 🔄 **End-to-end tests** | running… |")


def test_a_failed_step_and_a_long_one() -> None:
    steps = (StepTiming(name="Wait for rollout", started=NOW, seconds=3725, ok=False),)

    assert "| ❌ Wait for rollout | 1 h 2 min |" in render_comment(preview(phase=Phase.FAILED, steps=steps))


def test_the_api_servers_warnings_show_under_their_step() -> None:
    warning = 'Deployment/web: would violate PodSecurity "restricted:latest": runAsNonRoot != true'
    steps = (StepTiming(name="Apply manifests", started=NOW, seconds=2.0, ok=True, details=(warning,)),)

    comment = render_comment(preview(phase=Phase.READY, steps=steps))

    assert "<summary>Apply manifests: the API server warned (1 warning)</summary>" in comment
    assert f"```text\n{warning}\n```" in comment
    assert comment.index("| ✅ Apply manifests") < comment.index("the API server warned")


# ---------------------------------------------------------------- error and failure


def test_an_error_is_shown_as_previewbot_or_its_input_breaking() -> None:
    error = (
        ".preview.yml:\nline 3: images[0].name: 'ghcr.io/acme/web:v1' is not an image repository\n"
        "line 9: ttl: 'soon' is not a duration"
    )
    comment = render_comment(preview(phase=Phase.FAILED, error=error))

    assert "#### 🛑 Error" in comment
    assert "This is not a verdict on the code." in comment
    assert f"```text\n{error}\n```" in comment
    assert "Failure" not in comment


def test_a_failure_diagnoses_each_workload() -> None:
    report = preview(
        phase=Phase.FAILED,
        diagnoses=(
            diagnosis(
                log_tail="starting\nError: DATABASE_URL is not set\n",
                events=("Warning BackOff pod/web-7d9f: Back-off restarting failed container",),
            ),
        ),
    )
    comment = render_comment(report)

    assert "#### ❌ Failure: 1 workload did not become ready" in comment
    assert "#### 🛑 Error" not in comment
    assert "**`Deployment/web`**: 0/1 replicas available after 300s" in comment
    assert "Pod `web-7d9f`, container `app`: **`CrashLoopBackOff`**, restarted 7 times" in comment
    assert "```text\nback-off 5m0s restarting failed container=app\n```" in comment
    assert (
        "<details><summary>Log of web-7d9f/app (2 lines)</summary>\n\n"
        "```text\nstarting\nError: DATABASE_URL is not set\n```\n\n</details>"
    ) in comment
    assert "<details><summary>Events of Deployment/web (1 event)</summary>" in comment
    assert_balanced(comment)


def test_several_workloads_are_counted() -> None:
    comment = render_comment(preview(phase=Phase.FAILED, diagnoses=(diagnosis(), diagnosis(pod="web-2"))))

    assert "#### ❌ Failure: 2 workloads did not become ready" in comment


# ---------------------------------------------------------------- tests


def test_passing_tests_show_their_counts() -> None:
    cases = (TestCase(name="a"), TestCase(name="b"), TestCase(name="c", outcome=TestOutcome.SKIPPED))
    run = TestRun(passed=True, report=TestReport(cases=cases, seconds=3.0), seconds=4.25)
    comment = render_comment(preview(tests=run))

    assert "#### ✅ Tests passed\n\n2 passed · 0 failed · 0 errors · 1 skipped in 4.2 s\n" in comment
    assert "Failed tests" not in comment


def test_failed_tests_are_listed_with_their_messages() -> None:
    comment = render_comment(preview(phase=Phase.FAILED, tests=failing_tests(3)))

    assert "#### ❌ Tests failed\n\n1 passed · **2 failed** · **1 error** · 1 skipped in 42.0 s\n" in comment
    assert "**Failed tests**" in comment
    assert "❌ `e2e.test_pages::test_page_0` (error)\n\n```text\nAssertionError: expected 200\n" in comment
    assert "❌ `e2e.test_pages::test_page_2` (failed)" in comment
    assert "<details><summary>Test log (2 lines)</summary>\n\n```text\ncollected\nFAILED\n```" in comment
    assert "more failed test" not in comment
    assert_balanced(comment)


def test_at_most_twenty_failed_tests_are_listed() -> None:
    comment = render_comment(preview(phase=Phase.FAILED, tests=failing_tests(25)))

    assert "test_page_19`" in comment
    assert "test_page_20`" not in comment
    assert "_… and 5 more failed tests not shown._" in comment


def test_only_the_first_lines_of_a_test_message_are_shown() -> None:
    comment = render_comment(preview(phase=Phase.FAILED, tests=failing_tests(1, message=numbered(30))))

    assert "line 000009 " in comment
    assert "line 000010 " not in comment


def test_tests_that_could_not_finish_say_why() -> None:
    run = TestRun(
        passed=False,
        problem="the test Job's pod never started",
        seconds=61.0,
        diagnosis=WorkloadDiagnosis(
            workload=ObjectRef(api_version="batch/v1", kind="Job", name="e2e-0123456"),
            summary="the pod could not start",
            problems=(ContainerProblem(pod="e2e-0123456-x", container="tests", reason="ImagePullBackOff"),),
        ),
    )
    comment = render_comment(preview(phase=Phase.FAILED, tests=run))

    assert "#### ⚠️ Tests could not finish\n\nRan for 1 min 1 s.\n\n" in comment
    assert "```text\nthe test Job's pod never started\n```" in comment
    assert "**`Job/e2e-0123456`**: the pod could not start" in comment
    assert "Pod `e2e-0123456-x`, container `tests`: **`ImagePullBackOff`**\n" in comment


def test_the_note_is_shown() -> None:
    comment = render_comment(preview(note="Destroyed: the PR was **merged**."))

    assert "\nDestroyed: the PR was **merged**.\n" in comment


# ---------------------------------------------------------------- untrusted text


def test_backticks_in_user_text_cannot_close_the_code_block() -> None:
    log = "before\n```\n# Heading injected\n```` and ````` runs\nafter"
    report = preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=log),), tests=failing_tests(1, message=log))
    comment = render_comment(report)

    assert f"``````text\n{log}\n``````" in comment
    assert comment.count("``````text\n") == 2
    assert_balanced(comment)


def test_backticks_in_names_stay_inside_their_code_span() -> None:
    comment = render_comment(preview(namespace="a`b``c"))

    assert "| **Namespace** | ```a`b``c``` |" in comment
    assert "| **Namespace** | `a\\|b` |" in render_comment(preview(namespace="a|b"))


def test_colours_and_control_characters_are_dropped_and_progress_lines_keep_their_last_state() -> None:
    log = "\x1b[32mPASSED\x1b[0m test_a\r\ndownloading 10%\rdownloading 100%\nbell\x07 nul\x00\n"
    comment = render_comment(preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=log),)))

    assert "```text\nPASSED test_a\ndownloading 100%\nbell nul\n```" in comment


def test_secrets_are_masked_in_everything_shown() -> None:
    redactor.add("render-test-secret-value")
    report = preview(
        phase=Phase.FAILED,
        error="login with render-test-secret-value failed",
        diagnoses=(diagnosis(log_tail="Authorization: Bearer abc.def.ghi\nusing render-test-secret-value"),),
    )
    comment = render_comment(report)

    assert "render-test-secret-value" not in comment
    assert "abc.def.ghi" not in comment
    assert "login with *** failed" in comment
    assert "Authorization: ***\nusing ***" in comment


def test_a_markdown_looking_step_name_is_shown_literally() -> None:
    steps = (StepTiming(name="Apply *all* [manifests](x) | now", started=NOW, seconds=1, ok=True),)

    assert "| ✅ Apply \\*all\\* \\[manifests\\](x) \\| now | 1.0 s |" in render_comment(preview(steps=steps))


# ---------------------------------------------------------------- the size limit


def numbered(count: int, *, width: int = 60, prefix: str = "line") -> str:
    return "\n".join(f"{prefix} {index:06d} " + "x" * width for index in range(count))


def test_huge_logs_are_cut_to_their_last_lines() -> None:
    huge = numbered(40_000)
    report = preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=huge),), tests=failing_tests(3))
    comment = render_comment(report)

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert utf16_length(comment) > COMMENT_LIMIT - 200  # cut no more than needed
    assert "line 039999 " in comment
    assert "line 000000 " not in comment
    shown = int(re.search(r"Log of web-7d9f/app \(last (\d+) lines\)", comment).group(1))  # type: ignore[union-attr]
    assert f"_… {40_000 - shown} earlier lines not shown._" in comment
    assert "test_page_2`" in comment  # the failed tests were not cut
    assert comment.rstrip().endswith("`/preview help`</sub>")
    assert_balanced(comment)


def test_the_largest_log_is_cut_first() -> None:
    report = preview(
        phase=Phase.FAILED,
        diagnoses=(
            diagnosis(log_tail=numbered(30_000, prefix="big")),
            diagnosis(log_tail=numbered(50, prefix="small")),
        ),
    )
    comment = render_comment(report)

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "small 000000 " in comment  # the small log stays whole
    assert "(50 lines)" in comment
    assert "earlier lines not shown" in comment


def test_events_are_cut_after_the_logs() -> None:
    events = tuple(
        f"Warning BackOff pod/web-{index:05d}: Back-off restarting failed container" for index in range(5000)
    )
    report = preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=numbered(2000), events=events),))
    comment = render_comment(report)

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert re.search(r"_… 2000 earlier lines not shown._", comment)  # the log went first, whole
    assert re.search(r"_… \d+ earlier events not shown._", comment)
    assert "pod/web-04999" in comment  # the latest events stay
    assert "pod/web-00000" not in comment
    assert_balanced(comment)


def test_the_failed_test_list_is_cut_last() -> None:
    message = numbered(8, width=900)
    comment = render_comment(preview(phase=Phase.FAILED, tests=failing_tests(20, message=message)))

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "test_page_0`" in comment
    assert "test_page_19`" not in comment
    assert re.search(r"_… and \d+ more failed tests not shown._", comment)
    assert_balanced(comment)


def test_multibyte_text_is_measured_as_github_counts_it() -> None:
    emoji_log = "\n".join("🔥💥 " * 30 + f"{index}" for index in range(5000))
    report = preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=emoji_log),))
    comment = render_comment(report)

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "🔥💥 " * 30 + "4999" in comment
    assert "earlier lines not shown" in comment


def test_one_enormous_line_is_shortened() -> None:
    comment = render_comment(preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail="x" * 200_000),)))

    assert "x" * 1000 + " …\n" in comment
    assert "x" * 1001 not in comment


def test_a_hard_cut_keeps_the_marker_and_the_commands_and_says_so() -> None:
    diagnoses = tuple(
        WorkloadDiagnosis(
            workload=ObjectRef(api_version="apps/v1", kind="Deployment", name=f"service-{index:04d}"),
            summary="0/3 replicas available after 300s",
            problems=(ContainerProblem(pod=f"service-{index:04d}-abc", container="app", reason="ErrImagePull"),),
        )
        for index in range(2000)
    )
    comment = render_comment(preview(phase=Phase.FAILED, diagnoses=diagnoses))

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert comment.startswith(COMMENT_MARKER)
    assert "service-0000" in comment
    assert "service-1999" not in comment
    assert "_… the rest of this report was cut to fit GitHub's size limit._" in comment
    assert comment.rstrip().endswith("`/preview help`</sub>")
    assert_balanced(comment)


# ---------------------------------------------------------------- endpoints and workloads


def ingress(host: str, path: str = "/", **changes: object) -> Endpoint:
    return replace(Endpoint(kind=EndpointKind.INGRESS, name="web", host=host, path=path), **changes)


def test_the_status_card_lists_every_endpoint_with_its_address() -> None:
    endpoints = (
        ingress("app.example.com", "/api", tls=True, addresses=("203.0.113.9",)),
        ingress("docs.example.com", name="docs"),
        ingress("*.example.com"),
        ingress("", "/health"),
        Endpoint(kind=EndpointKind.LOAD_BALANCER, name="web-lb", ports=("80", "53/UDP"), addresses=("203.0.113.7",)),
        Endpoint(kind=EndpointKind.LOAD_BALANCER, name="queue", ports=("5672",)),
        Endpoint(kind=EndpointKind.NODE_PORT, name="debug", ports=("30080",)),
    )
    comment = render_comment(preview(endpoints=endpoints))

    assert (
        "| Endpoint | Kind | Ready/Address |\n| --- | --- | --- |\n"
        "| [https://app.example.com/api](<https://app.example.com/api>) | Ingress `web` | ✅ `203.0.113.9` |\n"
        "| [http://docs.example.com/](<http://docs.example.com/>) | Ingress `docs` | ⏳ pending: no address yet |\n"
        "| `http://*.example.com/` | Ingress `web` | ⏳ pending: no address yet |\n"
        "| `/health` on any host | Ingress `web` | ⏳ pending: no address yet |\n"
        "| ports `80`, `53/UDP` | LoadBalancer `web-lb` | ✅ `203.0.113.7` |\n"
        "| port `5672` | LoadBalancer `queue` | ⏳ pending: no address yet |\n"
        "| port `30080` | NodePort `debug` | ✅ on every node's address |\n"
    ) in comment
    assert "https://app.example.com/api" in render_summary(preview(endpoints=endpoints))


def test_each_workload_shows_its_readiness() -> None:
    def state(name: str, readiness: Readiness, ready: int, desired: int) -> WorkloadState:
        return WorkloadState(workload=replace(WEB, name=name), readiness=readiness, ready=ready, desired=desired)

    workloads = (
        state("web", Readiness.READY, 2, 2),
        state("worker", Readiness.WAITING, 1, 3),
        state("api", Readiness.FAILED, 0, 1),
    )
    comment = render_comment(preview(workloads=workloads))

    assert "**Workloads:** ✅ `Deployment/web` 2/2 · ⏳ `Deployment/worker` 1/3 · ❌ `Deployment/api` 0/1\n" in comment
    assert "    ⏳ Deployment/worker 1/3\n" in render_terminal(preview(workloads=workloads))


@pytest.mark.parametrize(
    "host", ["x](https://evil.example)", "a`b.example.com", "<img src=x>.example.com", "EVIL.example.com", "a b"]
)
def test_an_ingress_host_that_is_no_dns_name_is_never_shown(host: str) -> None:
    report = preview(endpoints=(ingress(host, addresses=("x](https://evil.example)", "10.0.0.7")),))
    comment = render_comment(report)

    assert "| _a host that is no DNS name, not shown_ | Ingress `web` | ✅ `10.0.0.7` |" in comment
    assert host not in comment
    assert "evil" not in comment
    assert host not in render_terminal(report)


def test_a_path_that_is_not_plain_is_shown_as_code_and_never_linked() -> None:
    path = "/x](https://evil.example) `<b>bold</b>` | next\ncell"
    comment = render_comment(preview(endpoints=(ingress("app.example.com", path),)))

    shown = "http://app.example.com/x](https://evil.example) `<b>bold</b>` \\| next cell"
    assert f"| ``{shown}`` | Ingress `web` |" in comment
    assert "](<https://evil" not in comment
    assert "(<http://app.example.com" not in comment


def test_many_endpoints_and_workloads_are_listed_up_to_a_limit() -> None:
    endpoints = tuple(ingress(f"pr-{index}.example.com", "/" + "p" * 5000) for index in range(100))
    workloads = tuple(
        WorkloadState(workload=replace(WEB, name=f"web-{index}"), readiness=Readiness.READY, ready=1, desired=1)
        for index in range(80)
    )
    comment = render_comment(preview(endpoints=endpoints, workloads=workloads))

    assert "pr-29.example.com" in comment
    assert "pr-30.example.com" not in comment
    assert "_… and 70 more endpoints not shown._" in comment
    assert "example.com/" + "p" * 199 + "…`" in comment
    assert "`Deployment/web-49` 1/1 · _… and 30 more_" in comment


def test_endpoints_and_workloads_are_cut_last_to_fit_the_limit() -> None:
    endpoints = tuple(ingress(f"pr-{index}.example.com", "/x`" * 60) for index in range(30))
    huge = numbered(40_000)
    report = preview(phase=Phase.FAILED, endpoints=endpoints, diagnoses=(diagnosis(log_tail=huge),))
    comment = render_comment(report)

    assert utf16_length(comment) <= COMMENT_LIMIT
    assert "pr-29.example.com" in comment  # the log was cut, the endpoints were not
    assert "earlier lines not shown" in comment
    assert_balanced(comment)

    crowded = preview(endpoints=endpoints * 2000, workloads=())
    assert utf16_length(render_comment(crowded)) <= COMMENT_LIMIT


# ---------------------------------------------------------------- the marker


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"{COMMENT_MARKER}\n### ✅ Preview ready", True),
        (f"\r\n  {COMMENT_MARKER}\r\nold", True),
        (f"> quoting\n{COMMENT_MARKER}", False),
        ("<!-- previewbot:other -->", False),
        ("", False),
    ],
)
def test_the_sticky_comment_is_known_by_its_leading_marker(body: str, expected: bool) -> None:
    assert is_preview_comment(body) is expected


# ---------------------------------------------------------------- the job summary


def test_the_summary_has_the_content_without_marker_or_commands() -> None:
    summary = render_summary(preview(phase=Phase.FAILED, tests=failing_tests(2)), server_url="https://github.com")

    assert summary.startswith("### ❌ Preview failed · acme/shop\\#12\n")
    assert COMMENT_MARKER not in summary
    assert "/preview" not in summary
    assert f"[`0123456`](<https://github.com/acme/shop/commit/{SHA}>)" in summary
    assert "❌ `e2e.test_pages::test_page_1` (failed)" in summary


def test_the_summary_allows_a_mebibyte_counted_in_bytes() -> None:
    log = "\n".join("журнал ✓ " * 10 + str(index) for index in range(40_000))
    report = preview(phase=Phase.FAILED, diagnoses=(diagnosis(log_tail=log),))

    summary = render_summary(report)
    comment = render_comment(report)

    assert len(summary.encode()) <= SUMMARY_LIMIT
    assert len(summary.encode()) > SUMMARY_LIMIT - 500
    assert len(summary) > len(comment)
    assert "earlier lines not shown" in summary
    assert_balanced(summary)


# ---------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (None, "There is no preview for this pull request. Comment `/preview redeploy` to create one."),
        (
            preview(),
            "✅ **Preview ready** at [https://pr-12.preview.acme.dev](<https://pr-12.preview.acme.dev>) "
            "for commit `0123456` (updated 2026-11-22 04:00:05 UTC).",
        ),
        (
            preview(phase=Phase.TESTING, running="End-to-end tests", url=None, updated_at=None),
            "🧪 **Testing: End-to-end tests** for commit `0123456`.",
        ),
        (
            preview(phase=Phase.DESTROYED, note="Destroyed: the PR was closed."),
            "🗑️ **Preview destroyed** for commit `0123456` (updated 2026-11-22 04:00:05 UTC).\n\n"
            "Destroyed: the PR was closed.",
        ),
    ],
)
def test_the_status_reply(report: PreviewReport | None, expected: str) -> None:
    assert render_status_reply(report) == expected


def test_the_refusal_names_the_permission_needed_and_held() -> None:
    assert render_refusal(user="octocat", verb="destroy", needed="write", has="read") == (
        "@octocat, `/preview destroy` needs **write** permission on this repository, "
        "and you have **read**. Ask a maintainer to run it."
    )


def test_a_refusal_does_not_mention_a_name_that_is_not_a_login() -> None:
    assert render_refusal(user="a b @c", verb="redeploy", needed="write", has="none").startswith("`a b @c`, ")


@pytest.mark.parametrize("label", ["preview-approved", None])
def test_fork_waiting_shows_the_exact_command_that_approves_the_head(label: str | None) -> None:
    text = render_fork_waiting(sha=SHA, label=label)

    assert "comes from a fork" in text
    assert f"```\n/preview approve {SHA}\n```" in text
    assert ("`preview-approved` label" in text) == (label is not None)
    assert "holds for that commit only" in text


@pytest.mark.parametrize(("named", "why"), [(None, "names no commit"), ("abcdef0", "names commit `abcdef0`")])
def test_an_approval_of_another_commit_gets_the_command_for_the_head(named: str | None, why: str) -> None:
    text = render_approve_again(sha=SHA, named=named)

    assert text.startswith(f"Nothing was approved or deployed: the approval {why}")
    assert text.endswith(f"```\n/preview approve {SHA}\n```")


def test_a_refusal_of_a_malformed_command_names_no_verb() -> None:
    text = render_refusal(user="stranger", verb=None, needed="write", has="none")
    assert text.startswith("@stranger, `/preview` commands need **write** permission")
