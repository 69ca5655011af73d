"""Reports leave in the background: in order, the comment in its newest state only, and never holding a run up."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiException

from previewbot import naming
from previewbot.core.reporting import Outbox, Reporter, TerminalSink
from previewbot.errors import TemporaryError
from previewbot.model import Phase, PreviewReport, PrRef
from tests.harness import (
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    eventually,
    namespace_of,
    pr_event,
    preview_config,
    web_deployment,
)

SHA = "1" * 40


class Recorder:
    """Writes that note themselves in the order they are sent; `gate` holds the first one back."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.times: list[float] = []
        self.gate = threading.Event()
        self.gate.set()

    def write(self, name: str) -> Any:
        def send() -> None:
            self.gate.wait()
            self.sent.append(name)
            self.times.append(time.monotonic())

        return send


def test_writes_go_out_in_order_without_holding_up_who_posts_them() -> None:
    outbox, recorder = Outbox(), Recorder()
    recorder.gate.clear()

    for name in ("status pending", "deployment", "status success"):
        outbox.post(name, recorder.write(name))

    assert recorder.sent == []  # the posts returned while the first write was still held back
    recorder.gate.set()
    assert outbox.flush(timeout=10)
    assert recorder.sent == ["status pending", "deployment", "status success"]


def test_only_the_newest_comment_waiting_is_sent_in_the_place_of_the_first() -> None:
    outbox, recorder = Outbox(), Recorder()
    recorder.gate.clear()
    outbox.post("status pending", recorder.write("status pending"))
    time.sleep(0.05)  # the sender has taken it and waits at the gate

    outbox.post("comment", recorder.write("comment: namespace"), key="comment")
    outbox.post("status", recorder.write("status success"))
    outbox.post("comment", recorder.write("comment: applying"), key="comment")
    outbox.post("comment", recorder.write("comment: ready"), key="comment")
    recorder.gate.set()

    assert outbox.flush(timeout=10)
    assert recorder.sent == ["status pending", "comment: ready", "status success"]


class SlowToFind(TerminalSink):
    """A sink whose comment takes GitHub until `found` is set to look for, and that notes what it shows."""

    def __init__(self) -> None:
        super().__init__(write=lambda _: None)
        self.looking = threading.Event()
        self.found = threading.Event()
        self.shown: list[Phase] = []

    def find_comment(self) -> int | None:
        self.looking.set()
        self.found.wait(10)
        return None

    def show(self, report: PreviewReport) -> None:
        self.shown.append(report.phase)


def test_what_was_reported_while_the_comment_was_looked_for_goes_out_with_it_once() -> None:
    sink, outbox = SlowToFind(), Outbox(linger=0.0)
    reporter = Reporter(
        sink=sink, report=PreviewReport(ref=PrRef(repo=REPO, number=PR_NUMBER), phase=Phase.PENDING), outbox=outbox
    )

    reporter.update(phase=Phase.DEPLOYING)
    assert sink.looking.wait(10)
    reporter.update(phase=Phase.READY)
    sink.found.set()

    assert outbox.flush(timeout=10)
    assert sink.shown == [Phase.READY]


def test_comment_updates_posted_close_together_are_sent_once() -> None:
    outbox, recorder = Outbox(linger=0.2), Recorder()

    outbox.post("comment", recorder.write("comment: rollout done"), key="comment", linger=True)
    outbox.post("comment", recorder.write("comment: ready"), key="comment", linger=True)
    outbox.post("status", recorder.write("status success"))

    assert outbox.flush(timeout=10)
    assert recorder.sent == ["status success", "comment: ready"]  # the status need not wait for the comment


def test_a_comment_due_goes_before_the_writes_waiting_ahead_of_it() -> None:
    outbox, recorder = Outbox(linger=0.0), Recorder()
    recorder.gate.clear()
    outbox.post("deployment", recorder.write("deployment"))
    time.sleep(0.05)  # the sender has taken it and waits at the gate

    outbox.post("status", recorder.write("status pending"), key="status")
    outbox.post("deployment status", recorder.write("deployment in progress"))
    outbox.post("comment", recorder.write("comment: ready"), key="comment", linger=True)
    outbox.post("status", recorder.write("status success"), key="status")
    recorder.gate.set()

    assert outbox.flush(timeout=10)
    assert recorder.sent == ["deployment", "comment: ready", "status success", "deployment in progress"]


def test_a_failed_write_is_logged_and_the_next_one_still_goes(caplog: pytest.LogCaptureFixture) -> None:
    outbox, recorder = Outbox(), Recorder()

    def broken() -> None:
        raise TemporaryError("GitHub answered 502 while setting a status: Server Error", status=502)

    outbox.post("set the commit status", broken)
    outbox.post("update the comment", recorder.write("comment"))

    assert outbox.flush(timeout=10)
    assert recorder.sent == ["comment"]
    assert "could not set the commit status: GitHub answered 502" in caplog.text


def test_flush_gives_up_after_its_timeout_and_says_what_was_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    outbox, recorder = Outbox(), Recorder()
    recorder.gate.clear()
    outbox.post("update the preview comment", recorder.write("comment"), key="comment")
    outbox.post("set the commit status previewbot/deploy", recorder.write("status"))

    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        done = outbox.flush(timeout=0.3)

    assert not done
    assert time.monotonic() - started < 5
    assert "not sent: update the preview comment; set the commit status previewbot/deploy" in caplog.text
    recorder.gate.set()


def test_what_was_posted_is_sent_before_the_interpreter_exits(tmp_path: Path) -> None:
    sent = tmp_path / "sent"
    script = (
        "import pathlib, sys\n"
        "from previewbot.core.reporting import Outbox, Reporter, TerminalSink\n"
        "outbox = Outbox(linger=0.3)\n"
        "outbox.post('comment', lambda: pathlib.Path(sys.argv[1]).write_text('ready'), key='comment')\n"
    )

    subprocess.run([sys.executable, "-c", script, str(sent)], check=True, timeout=60)

    assert sent.read_text() == "ready"


def test_a_few_writes_are_not_spaced_out() -> None:
    outbox, recorder = Outbox(spacing=60.0, backlog=8), Recorder()

    for index in range(5):
        outbox.post(f"write {index}", recorder.write(f"write {index}"))

    assert outbox.flush(timeout=10)


def test_a_crowd_of_writes_is_spaced_out() -> None:
    outbox, recorder = Outbox(spacing=0.2, backlog=2), Recorder()
    recorder.gate.clear()

    for index in range(5):
        outbox.post(f"write {index}", recorder.write(f"write {index}"))
    recorder.gate.set()

    assert outbox.flush(timeout=30)
    gaps = [later - earlier for earlier, later in zip(recorder.times, recorder.times[1:], strict=False)]
    # Queued behind the first were four; while more than two wait, each waits its turn.
    assert all(gap >= 0.19 for gap in gaps[:2])


@pytest.fixture
def app(checkout: Checkout, prefix: str, site: str) -> Checkout:
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    return checkout


def comment_writes(github: Any) -> int:
    return sum(
        1
        for request in github.requests
        if (request.method == "POST" and request.path.endswith("/comments"))
        or (request.method == "PATCH" and "/issues/comments/" in request.path)
    )


def test_a_deploy_updates_the_comment_at_most_once_per_step(bot: Bot, github: Any, app: Checkout) -> None:
    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.READY
    # Deploying, then Namespace, Apply manifests, Wait for rollout, and the outcome.
    assert 1 <= comment_writes(github) <= 5
    [comment] = github.comments(REPO, PR_NUMBER)
    assert "Ready" in comment.body or "ready" in comment.body


def test_the_deploy_does_not_wait_for_github_to_list_the_prs_comments(
    bot: Bot, github: Any, app: Checkout, core: Any, prefix: str
) -> None:
    # Until previewbot's own comment is found, GitHub holds the answer back: only the reports wait.
    listing = github.hold("GET", rf"/issues/{PR_NUMBER}/comments$")
    outcomes: list[Any] = []
    run = threading.Thread(target=lambda: outcomes.extend(bot.on("pull_request", pr_event("opened", sha=SHA))))
    run.start()

    def ready_on_the_namespace() -> bool:
        try:
            namespace = core.read_namespace(namespace_of(prefix))
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return (namespace.metadata.annotations or {}).get(naming.STATUS_ANNOTATION) == Phase.READY

    def deploy_status() -> str | None:
        return next((s.state for s in github.statuses(REPO, SHA) if s.context == "previewbot/deploy"), None)

    try:
        eventually(ready_on_the_namespace)
        eventually(lambda: deploy_status() == "success")  # the statuses do not wait behind the comment
        assert run.is_alive(), "the run ended without the comment"
    finally:
        listing.set()
        run.join(timeout=60)

    assert [outcome.status for outcome in outcomes] == [Phase.READY]
    [comment] = github.comments(REPO, PR_NUMBER)
    assert "ready" in comment.body.lower()
    [deployment] = github.deployments(REPO)
    assert deployment.statuses[-1].state == "success"


def test_previewbot_s_login_is_read_while_the_run_reads_its_config(bot: Bot, github: Any, app: Checkout) -> None:
    # Finding the comment takes GitHub three answers (login, comments, the comment itself): the
    # first need not wait for the run's first report.
    config_read = github.hold("GET", r"/contents/")
    outcomes: list[Any] = []
    run = threading.Thread(target=lambda: outcomes.extend(bot.on("pull_request", pr_event("opened", sha=SHA))))
    run.start()
    try:
        eventually(lambda: any(r.method == "POST" and r.path.endswith("/graphql") for r in github.requests))
    finally:
        config_read.set()
        run.join(timeout=60)

    assert [outcome.status for outcome in outcomes] == [Phase.READY]


def test_github_down_neither_stops_nor_hangs_the_deploy(
    bot: Bot, github: Any, app: Checkout, caplog: pytest.LogCaptureFixture
) -> None:
    for method in ("POST", "PATCH"):
        github.drop_connection(method, r".*", times=1_000)
    bot.report_wait = 1.0

    started = time.monotonic()
    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA))

    assert outcome.status == Phase.READY
    assert time.monotonic() - started < 60
    assert "not sent:" in caplog.text
    assert github.comments(REPO, PR_NUMBER) == []
