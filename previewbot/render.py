"""What previewbot writes for people: the sticky PR comment, the job summary and short replies.

Pure text from model records. Two rules hold for everything rendered here:

- Text from the cluster or the tests (messages, logs, events, errors) goes in code spans
  and code blocks whose fence is longer than any backtick run in it, so it cannot break
  out into the page, and it is passed through the redactor first.
- The result fits GitHub's size limit. When it would not, log tails are cut first (the
  largest first, keeping their last lines), then events, then the list of failed tests,
  each saying how much it left out; only then is the end of the text dropped, with a note.
"""

from __future__ import annotations

import bisect
import enum
import html
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate

from previewbot.model import (
    ContainerProblem,
    Endpoint,
    EndpointKind,
    OnDemandRef,
    Phase,
    PreviewEntry,
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

COMMENT_MARKER = "<!-- previewbot:preview -->"
COMMENT_LIMIT = 65536
"""GitHub's limit on an issue comment's body, in characters."""
SUMMARY_LIMIT = 1024 * 1024
"""GitHub's limit on one step's job summary, in bytes."""

FAILED_TESTS_SHOWN = 20
TEST_MESSAGE_LINES = 10
LINE_LIMIT = 1000
"""Longer lines (minified code, base64 blobs) are cut: one line should not use up a whole comment."""
TEXT_LIMIT = 10000
"""Longest free text (an error, a container's message) shown before it is cut."""
ENDPOINTS_SHOWN = 30
WORKLOADS_SHOWN = 50
ENDPOINT_TEXT_LIMIT = 200
"""Longest host and path shown: an Ingress path may be a long pattern."""

COMMANDS = (
    "/preview redeploy",
    "/preview retest",
    "/preview destroy",
    "/preview keep",
    "/preview status",
    "/preview help",
)

_PHASE_EMOJI = {
    Phase.PENDING: "⏳",
    Phase.DEPLOYING: "🚧",
    Phase.TESTING: "🧪",
    Phase.READY: "✅",
    Phase.FAILED: "❌",
    Phase.SLEEPING: "💤",
    Phase.DESTROYED: "🗑️",
}
_PHASE_TITLE = {
    Phase.PENDING: "Preview pending",
    Phase.DEPLOYING: "Deploying",
    Phase.TESTING: "Testing",
    Phase.READY: "Preview ready",
    Phase.FAILED: "Preview failed",
    Phase.SLEEPING: "Preview asleep",
    Phase.DESTROYED: "Preview destroyed",
}
_OUTCOME_LABEL = {TestOutcome.FAILED: "failed", TestOutcome.ERROR: "error"}

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BACKTICKS = re.compile(r"`+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!])")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_NOT_HEX = re.compile(r"[^0-9a-f]")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\[bot\])?$")
_DNS_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")
_LINKED_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_READINESS_MARK = {Readiness.READY: "✅", Readiness.WAITING: "⏳", Readiness.FAILED: "❌"}


# ---------------------------------------------------------------- public API


def is_preview_comment(body: str) -> bool:
    """True for previewbot's sticky comment: it starts with the marker."""
    return body.lstrip().startswith(COMMENT_MARKER)


def render_comment(report: PreviewReport, *, server_url: str = "https://github.com") -> str:
    """The sticky PR comment: marker, status, details and the commands a person may type."""
    footer = _commands_hint(report.phase)
    parts = [COMMENT_MARKER + "\n" + _status_heading(report), *_body(report, server_url=server_url)]
    return _fit(parts, footer=footer, limit=COMMENT_LIMIT, measure=_utf16_length)


def render_summary(report: PreviewReport, *, server_url: str = "https://github.com") -> str:
    """The same content for the Action's job summary: no marker, no command hints."""
    parts = [
        _status_heading(report, subject=subject(report.ref)),
        *_body(report, server_url=server_url),
    ]
    return _fit(parts, footer="", limit=SUMMARY_LIMIT, measure=_utf8_length)


def render_status_reply(report: PreviewReport | None) -> str:
    """A short answer to `/preview status`."""
    if report is None:
        return "There is no preview for this pull request. Comment `/preview redeploy` to create one."
    facts = [f"{_PHASE_EMOJI[report.phase]} **{_status_text(report)}**"]
    if report.url and report.phase is not Phase.DESTROYED:
        facts.append(f"at {_link(report.url, report.url)}")
    if report.head_sha:
        facts.append(f"for commit {_code(report.head_sha[:7])}")
    if report.updated_at:
        facts.append(f"(updated {_when(report.updated_at)})")
    reply = " ".join(facts) + "."
    if report.kept:
        reply += " It is kept: it neither expires nor sleeps."
    elif report.expires_at and report.phase is not Phase.DESTROYED:
        reply += f" It expires {_when(report.expires_at)} unless there is activity before."
    if report.note:
        reply += "\n\n" + redactor.redact(report.note).strip()
    return reply


def render_refusal(*, user: str, verb: str | None, needed: str, has: str) -> str:
    """Why a command was not run: the commenter lacks the permission it needs (`verb` None: any command)."""
    who = f"@{user}" if _LOGIN.match(user) else _code(user)
    what = f"`/preview {_plain(verb)}` needs" if verb else "`/preview` commands need"
    return (
        f"{who}, {what} **{_plain(needed)}** permission on this repository, "
        f"and you have **{_plain(has)}**. Ask a maintainer to run it."
    )


def approve_command(sha: str) -> str:
    """The exact command that approves commit sha, to copy: it names the whole SHA."""
    return f"/preview approve {sha}"


def render_fork_waiting(*, sha: str, label: str | None) -> str:
    """Why a fork's PR has no preview yet, and how a maintainer approves it."""
    how = f"comment\n\n```\n{approve_command(_hex(sha))}\n```\n\n"
    if label:
        how += f"or add the {_code(label)} label while {_code(_hex(sha)[:7])} is the head. "
    return (
        "This pull request comes from a fork, so its code is not deployed until a maintainer has read it "
        f"and approves that very commit. To approve commit {_code(_hex(sha)[:7])}, {how}"
        "The approval holds for that commit only: each new push needs a new approval."
    )


def render_approve_again(*, sha: str, named: str | None) -> str:
    """The reply to an approval that names no commit, or one that is not the head: nothing was approved."""
    why = (
        f"names commit {_code(_hex(named)[:7])}, which is not the head of this pull request"
        if named
        else "names no commit"
    )
    return (
        f"Nothing was approved or deployed: the approval {why}. "
        f"The head is {_code(_hex(sha)[:7])}; once you have read it, approve it with\n\n"
        f"```\n{approve_command(_hex(sha))}\n```"
    )


# ---------------------------------------------------------------- content


def subject(ref: PrRef | OnDemandRef) -> str:
    """Which preview, in words: `owner/name#2`, or `owner/name, on demand: my-branch`."""
    return f"{ref.repo}#{ref.number}" if isinstance(ref, PrRef) else f"{ref.repo}, on demand: {ref.name}"


def _status_text(report: PreviewReport) -> str:
    title = _PHASE_TITLE[report.phase]
    if report.phase in (Phase.DEPLOYING, Phase.TESTING) and report.running:
        return f"{title}: {report.running}"
    return title


def _status_heading(report: PreviewReport, *, subject: str | None = None) -> str:
    title = _status_text(report) + (f" · {subject}" if subject else "")
    return f"### {_PHASE_EMOJI[report.phase]} {_plain(title)}\n\n"


def _body(report: PreviewReport, *, server_url: str) -> list[Part]:
    parts: list[Part] = []
    facts = _facts_table(report, server_url=server_url)
    if facts:
        parts.append(facts)
    if report.endpoints:
        parts.append(_endpoints_table(report.endpoints))
    if report.workloads:
        parts.append(_workloads_line(report.workloads))
    if report.note:
        # The note is previewbot's own markdown (it may hold code spans), so it is not escaped.
        parts.append(redactor.redact(report.note).strip() + "\n\n")
    steps = _steps_table(report)
    if steps:
        parts.append(steps)
    parts.extend(
        _cluster_lines(step.details, title=f"{step.name}: the API server warned", noun="warning")
        for step in report.steps
        if step.details
    )
    if report.error:
        parts.append(
            "#### 🛑 Error\n\n"
            "previewbot could not finish: its configuration, the manifests or an API it calls went wrong. "
            "This is not a verdict on the code.\n\n" + _code_block(_clip(_clean(report.error), TEXT_LIMIT))
        )
    if report.diagnoses:
        count = len(report.diagnoses)
        parts.append(
            f"#### ❌ Failure: {count} workload{'s' * (count != 1)} did not become ready\n\n"
            "The manifests were applied, but what they describe did not start. What Kubernetes says:\n\n"
        )
        for diagnosis in report.diagnoses:
            parts.extend(_diagnosis(diagnosis))
    if report.tests:
        parts.extend(_tests(report.tests))
    return parts


def _facts_table(report: PreviewReport, *, server_url: str) -> str:
    rows: list[tuple[str, str]] = []
    if report.url:
        shown = _link(report.url, report.url) if report.phase is not Phase.DESTROYED else _code(report.url)
        rows.append(("URL", shown))
    if report.namespace:
        rows.append(("Namespace", _code(report.namespace)))
    if report.head_sha:
        commit_url = f"{server_url.rstrip('/')}/{report.ref.repo}/commit/{report.head_sha}"
        rows.append(("Commit", _link(_code(report.head_sha[:7]), commit_url, text_is_markdown=True)))
    if report.updated_at:
        rows.append(("Updated", _when(report.updated_at)))
    if report.phase is not Phase.DESTROYED:
        if report.kept:
            rows.append(("Expires", "never: kept (`/preview keep off` lets it expire)"))
        elif report.expires_at:
            rows.append(("Expires", f"{_when(report.expires_at)} unless there is activity before"))
    if not rows:
        return ""
    lines = ["| | |", "| --- | --- |", *(f"| **{name}** | {_cell(value)} |" for name, value in rows)]
    return "\n".join(lines) + "\n\n"


def _endpoints_table(endpoints: Sequence[Endpoint]) -> _Excerpt:
    rows = [_endpoint_row(endpoint) for endpoint in endpoints[:ENDPOINTS_SHOWN]]
    beyond = len(endpoints) - len(rows)

    def wrap(kept: Sequence[str], omitted: int) -> str:
        text = "| Endpoint | Kind | Ready/Address |\n| --- | --- | --- |\n" + "\n".join(kept) + "\n\n" if kept else ""
        if omitted + beyond:
            text += f"_… and {omitted + beyond} more endpoint{'s' * (omitted + beyond != 1)} not shown._\n\n"
        return text

    return _Excerpt(cut=_Cut.STATUS, items=rows, keep_tail=False, wrap=wrap)


def _endpoint_row(endpoint: Endpoint) -> str:
    if endpoint.kind is EndpointKind.INGRESS:
        target = _ingress_target(endpoint)
        if target is None:
            where = "_a host that is no DNS name, not shown_"
        elif _linkable(endpoint):
            where = _link(target, target)
        else:
            where = _code(target) + (" on any host" if not endpoint.host else "")
    else:
        where = _ports_text(endpoint, code=_code)
    kind = f"{endpoint.kind.value} {_code(endpoint.name)}"
    return f"| {_cell(where)} | {_cell(kind)} | {_cell(_reached(endpoint, code=_code))} |"


def _ingress_target(endpoint: Endpoint) -> str | None:
    """An Ingress rule's URL (its path alone when it takes any host); None when its host is no DNS name.

    A PR writes its Ingresses: a host is shown only when it is a DNS name (or a wildcard over one),
    which leaves it no character that markdown, HTML or a terminal would read as anything else.
    """
    path = _shortened(endpoint.path or "/")
    if not endpoint.host:
        return path
    if not _DNS_NAME.fullmatch(endpoint.host.removeprefix("*.")):
        return None
    return f"{'https' if endpoint.tls else 'http'}://{endpoint.host}{path}"


def _linkable(endpoint: Endpoint) -> bool:
    """Only the URL of a plain host and a plain path is a link; any other is shown as code."""
    path = endpoint.path or "/"
    return (
        bool(endpoint.host)
        and not endpoint.host.startswith("*.")
        and len(path) <= ENDPOINT_TEXT_LIMIT
        and _LINKED_PATH.fullmatch(path) is not None
    )


def _ports_text(endpoint: Endpoint, *, code: Callable[[str], str]) -> str:
    ports = [code(port) for port in endpoint.ports[:5]] + ["…"] * (len(endpoint.ports) > 5)
    return f"port{'s' * (len(endpoint.ports) != 1)} {', '.join(ports)}" if ports else "no ports"


def _reached(endpoint: Endpoint, *, code: Callable[[str], str]) -> str:
    """Whether the endpoint has its address yet, and which: a load balancer's comes when the cloud made one."""
    if endpoint.kind is EndpointKind.NODE_PORT:
        return "✅ on every node's address"
    addresses = _addresses(endpoint)
    if addresses:
        return "✅ " + ", ".join(code(address) for address in addresses)
    return "⏳ pending: no address yet"


def _shortened(text: str) -> str:
    return text if len(text) <= ENDPOINT_TEXT_LIMIT else text[:ENDPOINT_TEXT_LIMIT] + "…"


def _addresses(endpoint: Endpoint) -> list[str]:
    """The load balancer's IPs and DNS names; anything else in its status is not shown."""
    return [address for address in endpoint.addresses[:3] if _is_address(address)]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _DNS_NAME.fullmatch(text) is not None
    return True


def _workloads_line(workloads: Sequence[WorkloadState]) -> _Excerpt:
    items = [_workload_item(state) for state in workloads[:WORKLOADS_SHOWN]]
    beyond = len(workloads) - len(items)

    def wrap(kept: Sequence[str], omitted: int) -> str:
        shown = list(kept)
        if omitted + beyond:
            shown.append(f"_… and {omitted + beyond} more_")
        return "**Workloads:** " + " · ".join(shown) + "\n\n"

    return _Excerpt(cut=_Cut.STATUS, items=items, keep_tail=False, wrap=wrap)


def _workload_item(state: WorkloadState) -> str:
    return f"{_READINESS_MARK[state.readiness]} {_code(str(state.workload))} {state.ready}/{state.desired}"


def _steps_table(report: PreviewReport) -> str:
    live = report.phase in (Phase.DEPLOYING, Phase.TESTING)
    rows = [_step_row(step, live=live) for step in report.steps]
    if live and report.running and all(step.name != report.running for step in report.steps):
        rows.append(_running_row(report.running))
    if not rows:
        return ""
    return "\n".join(["| Step | Time |", "| --- | --- |", *rows]) + "\n\n"


def _step_row(step: StepTiming, *, live: bool) -> str:
    if live and step.seconds is None:
        return _running_row(step.name)
    mark = {True: "✅", False: "❌", None: "⚪"}[step.ok]
    time = _duration(step.seconds) if step.seconds is not None else "—"
    return f"| {mark} {_cell(_plain(step.name))} | {time} |"


def _running_row(name: str) -> str:
    return f"| 🔄 **{_cell(_plain(name))}** | running… |"


def _diagnosis(diagnosis: WorkloadDiagnosis) -> list[Part]:
    parts: list[Part] = [f"**{_code(str(diagnosis.workload))}**: {_plain(diagnosis.summary)}\n\n"]
    for problem in diagnosis.problems:
        parts.extend(_container_problem(problem))
    if diagnosis.events:
        parts.append(_cluster_lines(diagnosis.events, title=f"Events of {diagnosis.workload}", noun="event"))
    return parts


def _cluster_lines(lines: Sequence[str], *, title: str, noun: str) -> _Excerpt:
    """Lines the cluster said (events, warnings), folded under a title; the newest kept when cut."""
    clipped = [_clip_line(line) for line in _clean("\n".join(lines)).splitlines()]
    return _Excerpt(cut=_Cut.EVENTS, items=clipped, keep_tail=True, wrap=_collapsed_lines(title, noun=noun))


def _container_problem(problem: ContainerProblem) -> list[Part]:
    restarts = f", restarted {problem.restarts} time{'s' * (problem.restarts != 1)}" if problem.restarts else ""
    where = f"Pod {_code(problem.pod)}, container {_code(problem.container)}"
    text = f"{where}: **{_code(problem.reason)}**{restarts}\n\n"
    if problem.message:
        text += _code_block(_clip(_clean(problem.message), TEXT_LIMIT))
    parts: list[Part] = [text]
    if problem.log_tail:
        parts.append(_log_excerpt(problem.log_tail, title=f"Log of {problem.pod}/{problem.container}"))
    return parts


def _tests(run: TestRun) -> list[Part]:
    if run.problem:
        heading = "#### ⚠️ Tests could not finish"
    else:
        heading = "#### ✅ Tests passed" if run.passed else "#### ❌ Tests failed"
    text = heading + "\n\n"
    if run.report:
        text += _test_counts(run.report, seconds=run.seconds or run.report.seconds) + "\n\n"
    elif run.seconds:
        text += f"Ran for {_duration(run.seconds)}.\n\n"
    if run.problem:
        text += _code_block(_clip(_clean(run.problem), TEXT_LIMIT))
    parts: list[Part] = [text]
    if run.diagnosis:
        parts.extend(_diagnosis(run.diagnosis))
    failures = run.report.failures if run.report else ()
    if failures:
        parts.append(_failed_tests(failures))
    if run.log_tail:
        parts.append(_log_excerpt(run.log_tail, title="Test log"))
    return parts


def _test_counts(
    report: TestReport, *, seconds: float, strong: Callable[[str], str] = lambda text: f"**{text}**"
) -> str:
    errors = report.count(TestOutcome.ERROR)
    counts = [
        (report.count(TestOutcome.FAILED), "failed"),
        (errors, "error" if errors == 1 else "errors"),
    ]
    shown = [f"{report.count(TestOutcome.PASSED)} passed"]
    shown += [strong(f"{number} {label}") if number else f"{number} {label}" for number, label in counts]
    shown.append(f"{report.count(TestOutcome.SKIPPED)} skipped")
    return " · ".join(shown) + (f" in {_duration(seconds)}" if seconds else "")


def _failed_tests(failures: Sequence[TestCase]) -> _Excerpt:
    items = [_failed_test(case) for case in failures[:FAILED_TESTS_SHOWN]]
    beyond = len(failures) - len(items)

    def wrap(kept: Sequence[str], omitted: int) -> str:
        text = "**Failed tests**\n\n" + "".join(kept)
        if omitted + beyond:
            text += f"_… and {omitted + beyond} more failed test{'s' * (omitted + beyond != 1)} not shown._\n\n"
        return text

    return _Excerpt(cut=_Cut.TESTS, items=items, keep_tail=False, wrap=wrap)


def _test_title(case: TestCase) -> str:
    if case.classname and case.classname not in case.name and case.name not in case.classname:
        return f"{case.classname}::{case.name}"
    return case.name


def _failed_test(case: TestCase) -> str:
    title = _test_title(case)
    text = f"❌ {_code(title)} ({_OUTCOME_LABEL.get(case.outcome, case.outcome.value)})\n\n"
    if case.message:
        lines = [_clip_line(line) for line in _clean(case.message).splitlines()[:TEST_MESSAGE_LINES]]
        text += _code_block("\n".join(lines))
    return text


def _log_excerpt(log: str, *, title: str) -> _Excerpt:
    lines = [_clip_line(line) for line in _clean(log).rstrip("\n").splitlines()]
    return _Excerpt(
        cut=_Cut.LOGS,
        items=lines,
        keep_tail=True,
        wrap=_collapsed_lines(title, noun="line"),
    )


def _collapsed_lines(title: str, *, noun: str) -> Callable[[Sequence[str], int], str]:
    """Lines in a code block folded under a title, saying how many earlier ones were cut."""

    def wrap(kept: Sequence[str], omitted: int) -> str:
        summary = f"{title} ({'last ' * bool(omitted)}{len(kept)} {noun}{'s' * (len(kept) != 1)})"
        text = f"<details><summary>{html.escape(summary)}</summary>\n\n"
        if omitted:
            text += f"_… {omitted} earlier {noun}{'s' * (omitted != 1)} not shown._\n\n"
        if kept:
            text += _code_block("\n".join(kept))
        return text + "</details>\n\n"

    return wrap


def _commands_hint(phase: Phase) -> str:
    commands = {Phase.DESTROYED: COMMANDS[:1], Phase.SLEEPING: ("/preview wake", *COMMANDS[2:])}.get(phase, COMMANDS)
    return "<sub>Commands: " + " · ".join(f"`{command}`" for command in commands) + "</sub>"


# ---------------------------------------------------------------- fitting the limit


class _Cut(enum.IntEnum):
    """What may be shortened, in the order it is shortened."""

    LOGS = 1
    EVENTS = 2
    TESTS = 3
    STATUS = 4  # the endpoints and the workloads: what a person reads first


@dataclass(slots=True, kw_only=True)
class _Excerpt:
    """A run of items (log lines, events, failed tests) that may be cut to a budget of characters.

    It keeps its last items (keep_tail) or its first ones; `wrap` turns the kept items and
    the number left out into markdown.
    """

    cut: _Cut
    items: Sequence[str]
    keep_tail: bool
    wrap: Callable[[Sequence[str], int], str]
    budget: int | None = None
    _sizes: list[int] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        ordered = reversed(self.items) if self.keep_tail else self.items
        self._sizes = list(accumulate(len(item) + 1 for item in ordered))

    @property
    def full_size(self) -> int:
        return self._sizes[-1] if self._sizes else 0

    def render(self) -> str:
        count = len(self.items) if self.budget is None else bisect.bisect_right(self._sizes, self.budget)
        kept = self.items[len(self.items) - count :] if self.keep_tail else self.items[:count]
        return self.wrap(kept, len(self.items) - count)


Part = str | _Excerpt
"""A piece of the text that stands alone as markdown, so the text may end after any of them."""


def _fit(parts: list[Part], *, footer: str, limit: int, measure: Callable[[str], int]) -> str:
    def text_of(chosen: Sequence[Part]) -> str:
        body = "".join(part if isinstance(part, str) else part.render() for part in chosen)
        return (body + footer).rstrip() + "\n"

    def fits(chosen: Sequence[Part]) -> bool:
        return measure(text_of(chosen)) <= limit

    if fits(parts):
        return text_of(parts)
    excerpts = [part for part in parts if isinstance(part, _Excerpt)]
    for cut in _Cut:
        group = [excerpt for excerpt in excerpts if excerpt.cut is cut]
        if not group:
            continue
        # One budget for the whole group cuts the largest excerpts first and leaves small ones whole.
        low, high = 0, max(excerpt.full_size for excerpt in group)
        for excerpt in group:
            excerpt.budget = low
        if not fits(parts):
            continue
        while low < high:
            middle = (low + high + 1) // 2
            for excerpt in group:
                excerpt.budget = middle
            low, high = (middle, high) if fits(parts) else (low, middle - 1)
        for excerpt in group:
            excerpt.budget = low
        return text_of(parts)
    closing = "_… the rest of this report was cut to fit GitHub's size limit._\n\n"
    # The first part, the status with the marker, always stays; sizes add up, so each is measured once.
    room = limit - measure(closing + footer) - 1
    kept: list[Part] = []
    for part in parts:
        room -= measure(part if isinstance(part, str) else part.render())
        if kept and room < 0:
            break
        kept.append(part)
    return text_of([*kept, closing])


def _utf16_length(text: str) -> int:
    # GitHub may count a character outside the BMP (most emoji) as two; counting so is never short.
    return len(text.encode("utf-16-le")) // 2


def _utf8_length(text: str) -> int:
    return len(text.encode())


# ---------------------------------------------------------------- markdown helpers


def _clean(text: str) -> str:
    """Text from outside made fit to show: secrets masked, colours and control characters gone."""
    text = redactor.redact(text).replace("\r\n", "\n")
    # A lone carriage return redraws the line (progress bars): what stayed on screen is its last part.
    text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    return _CONTROL.sub("", _ANSI_ESCAPE.sub("", text))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… {len(text) - limit} more characters not shown"


def _clip_line(line: str) -> str:
    return line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " …"


def _code_block(text: str) -> str:
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip(chr(10))}\n{fence}\n\n"


def _code(text: str) -> str:
    """An inline code span for one line of any text, backticks included."""
    text = " ".join(_clean(text).split("\n"))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{ticks}{padded}{ticks}"


def _hex(text: str) -> str:
    """A commit SHA as previewbot shows it: lower-case hex and nothing else."""
    return _NOT_HEX.sub("", text.lower())


def _plain(text: str) -> str:
    """One line of previewbot's own words, with markdown's special characters made literal."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(_clean(text).split()))


def _cell(text: str) -> str:
    # A code span does not protect a pipe inside a table cell; only escaping it does.
    return _UNESCAPED_PIPE.sub(r"\\|", text)


def _link(text: str, url: str, *, text_is_markdown: bool = False) -> str:
    target = url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")
    return f"[{text if text_is_markdown else _plain(text)}](<{target}>)"


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# ---------------------------------------------------------------- for a terminal

_TERMINAL_STEP = {True: "✔", False: "✘", None: "·"}


def render_terminal(report: PreviewReport) -> str:
    """The report for a person at a terminal: what the PR comment shows, as indented plain text.

    Text from the cluster or the tests is cleaned as for the comment: secrets masked, colours and
    control characters dropped, so a pod's log cannot move the cursor or retitle the terminal.
    """
    lines = [f"{_PHASE_EMOJI[report.phase]} {_status_text(report)} · {subject(report.ref)}"]
    facts = (("URL", report.url), ("Namespace", report.namespace), ("Commit", report.head_sha[:7]))
    lines += [f"  {name + ':':<11}{_one_line(value)}" for name, value in facts if value]
    lines += _terminal_status(report)
    if report.note:
        lines += ["", *_indented(report.note, 2)]
    if report.steps:
        lines += ["", "  Steps:"]
        for step in report.steps:
            time = _duration(step.seconds) if step.seconds is not None else "running"
            lines.append(f"    {_TERMINAL_STEP[step.ok]} {_one_line(step.name):<24} {time}")
    if report.error:
        lines += ["", "  Error: previewbot could not finish (its config, the manifests or an API went wrong):"]
        lines += _indented(_clip(report.error, TEXT_LIMIT), 4)
    if report.diagnoses:
        count = len(report.diagnoses)
        lines += ["", f"  ✘ {count} workload{'s' * (count != 1)} did not become ready:"]
        for diagnosis in report.diagnoses:
            lines += _terminal_diagnosis(diagnosis, indent=4)
    if report.tests:
        lines += _terminal_tests(report.tests)
    return "\n".join(lines) + "\n"


def render_preview_table(entries: Sequence[PreviewEntry], *, now: datetime) -> str:
    """`previewbot list`: one preview a row, in aligned columns."""
    if not entries:
        return "No previews.\n"
    header = ("PREVIEW", "REPO", "COMMIT", "STATE", "AGE", "EXPIRES", "URL", "NAMESPACE")
    rows = [
        (
            f"#{entry.pr}" if entry.pr is not None else f"{entry.name} (on demand)",
            entry.repo,
            entry.head_sha[:7] or "-",
            "terminating" if entry.terminating else entry.phase or "-",
            _since(entry.created_at, now) if entry.created_at else "-",
            _expiry(entry.expires_at, now),
            entry.url or "-",
            entry.namespace,
        )
        for entry in entries
    ]
    return aligned_table(header, rows)


def aligned_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A header and rows in columns as wide as their widest cell, for a terminal: each cell on one line."""
    cleaned = [tuple(header), *(tuple(_one_line(cell) for cell in row) for row in rows)]
    widths = [max(len(row[column]) for row in cleaned) for column in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n" for row in cleaned
    )


def preview_records(entries: Sequence[PreviewEntry]) -> list[dict[str, object]]:
    """`previewbot list --output json`: one object a preview, times in ISO 8601."""
    return [
        {
            "kind": "pr" if entry.pr is not None else "on-demand",
            "repo": entry.repo,
            "pr": entry.pr,
            "name": entry.name,
            "namespace": entry.namespace,
            "commit": entry.head_sha,
            "state": "terminating" if entry.terminating else entry.phase,
            "created_at": entry.created_at.isoformat() if entry.created_at else None,
            "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
            "url": entry.url,
        }
        for entry in entries
    ]


def _terminal_status(report: PreviewReport) -> list[str]:
    """The endpoints and the workloads' readiness, one a line."""
    lines = []
    if report.endpoints:
        lines += ["", "  Endpoints:"]
        for endpoint in report.endpoints[:ENDPOINTS_SHOWN]:
            if endpoint.kind is EndpointKind.INGRESS:
                target = _ingress_target(endpoint)
                where = "(a host that is no DNS name, not shown)" if target is None else target
                where += "" if endpoint.host else " on any host"
            else:
                where = _ports_text(endpoint, code=str)
            kind = f"{endpoint.kind.value} {_one_line(endpoint.name)}"
            lines.append(f"    {_one_line(where)}  ({kind})  {_reached(endpoint, code=str)}")
        if len(report.endpoints) > ENDPOINTS_SHOWN:
            lines.append(f"    … and {len(report.endpoints) - ENDPOINTS_SHOWN} more")
    if report.workloads:
        lines += ["", "  Workloads:"]
        lines += [
            f"    {_READINESS_MARK[state.readiness]} {_one_line(str(state.workload))} {state.ready}/{state.desired}"
            for state in report.workloads[:WORKLOADS_SHOWN]
        ]
        if len(report.workloads) > WORKLOADS_SHOWN:
            lines.append(f"    … and {len(report.workloads) - WORKLOADS_SHOWN} more")
    return lines


def _terminal_diagnosis(diagnosis: WorkloadDiagnosis, *, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{diagnosis.workload}: {_one_line(diagnosis.summary)}"]
    for problem in diagnosis.problems:
        restarts = f", restarted {problem.restarts} time{'s' * (problem.restarts != 1)}" if problem.restarts else ""
        lines.append(f"{pad}  pod {problem.pod}, container {problem.container}: {_one_line(problem.reason)}{restarts}")
        if problem.message:
            lines += _indented(_clip(problem.message, TEXT_LIMIT), indent + 4)
        if problem.log_tail:
            lines += _terminal_log(
                problem.log_tail, title=f"log of {problem.pod}/{problem.container}", indent=indent + 4
            )
    if diagnosis.events:
        lines.append(f"{pad}  events:")
        lines += _indented("\n".join(diagnosis.events), indent + 4)
    return lines


def _terminal_tests(run: TestRun) -> list[str]:
    verdict = "✔ Tests passed" if run.passed else "✘ Tests failed"
    heading = "⚠ Tests could not finish" if run.problem else verdict
    if run.report:
        heading += ": " + _test_counts(run.report, seconds=run.seconds or run.report.seconds, strong=str)
    elif run.seconds:
        heading += f" after {_duration(run.seconds)}"
    lines = ["", f"  {heading}"]
    if run.problem:
        lines += _indented(_clip(run.problem, TEXT_LIMIT), 4)
    if run.diagnosis:
        lines += _terminal_diagnosis(run.diagnosis, indent=4)
    failures = run.report.failures if run.report else ()
    if failures:
        lines.append("    Failed tests:")
        for case in failures[:FAILED_TESTS_SHOWN]:
            lines.append(
                f"      ✘ {_one_line(_test_title(case))} ({_OUTCOME_LABEL.get(case.outcome, case.outcome.value)})"
            )
            message = "\n".join(case.message.splitlines()[:TEST_MESSAGE_LINES])
            lines += _indented(message, 10) if message else []
        if len(failures) > FAILED_TESTS_SHOWN:
            lines.append(f"      … and {len(failures) - FAILED_TESTS_SHOWN} more failed tests")
    if run.log_tail:
        lines += _terminal_log(run.log_tail, title="test log", indent=4)
    return lines


def _terminal_log(log: str, *, title: str, indent: int) -> list[str]:
    count = len(log.rstrip("\n").splitlines())
    return [f"{' ' * indent}{title} (last {count} line{'s' * (count != 1)}):", *_indented(log, indent + 2)]


def _indented(text: str, indent: int) -> list[str]:
    return [(" " * indent + _clip_line(line)).rstrip() for line in _clean(text).rstrip("\n").splitlines()]


def _one_line(text: str) -> str:
    return " ".join(_clean(text).split())


def _since(moment: datetime, now: datetime) -> str:
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _expiry(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"in {_since(now, moment)}" if moment > now else f"expired {_since(moment, now)} ago"
