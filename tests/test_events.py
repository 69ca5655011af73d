"""Events to intents, on GitHub's example payloads and the variants built from them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from previewbot.commands import ERRORS_SHOWN, VERBS, CommandError, error_reply, help_text, parse_comment
from previewbot.errors import EventError
from previewbot.events import (
    BuildFinished,
    build_from_event,
    intents_from_event,
    is_bot,
    pull_request_from_payload,
    read_event_file,
)
from previewbot.model import (
    Approve,
    Collect,
    Deploy,
    Destroy,
    Ignore,
    Intent,
    PrRef,
    PullRequest,
    Redeploy,
    Reply,
    Retest,
    Status,
)

FIXTURES = Path(__file__).parent / "fixtures" / "github"
REPO = "Codertocat/Hello-World"
PR_2 = PrRef(repo=REPO, number=2)
PR_1 = PrRef(repo=REPO, number=1)  # issue #1 of the examples, made a PR in the on_pr variants
COMMENT_ID = 492700400
HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"

SAME_REPO_PR = PullRequest(
    repo=REPO,
    number=2,
    head_sha=HEAD_SHA,
    head_ref="changes",
    base_ref="master",
    default_branch="master",
    author="Codertocat",
    head_repo=REPO,
    labels=("bug",),
    html_url="https://github.com/Codertocat/Hello-World/pull/2",
)
FORK_PR = PullRequest(
    repo=REPO,
    number=2,
    head_sha=HEAD_SHA,
    head_ref="changes",
    base_ref="master",
    default_branch="master",
    author="octocat",
    head_repo="octocat/Hello-World",
    labels=("bug",),
    html_url="https://github.com/Codertocat/Hello-World/pull/2",
)


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return payload


def event_of(fixture: str) -> str:
    return fixture.split(".", 1)[0]


def error_reply_to(body: str) -> str:
    [error] = parse_comment(body)
    assert isinstance(error, CommandError)
    return error_reply([error])


def assert_intents(actual: list[Intent], expected: list[Intent]) -> None:
    """Equal, but an expected Ignore's reason need only appear within the actual one."""
    assert len(actual) == len(expected), actual
    for got, wanted in zip(actual, expected, strict=True):
        if isinstance(wanted, Ignore):
            assert isinstance(got, Ignore), got
            assert wanted.reason in got.reason
            assert "\n" not in got.reason
        else:
            assert got == wanted


EXPECTED_BY_FIXTURE: dict[str, list[Intent]] = {
    "pull_request.opened.json": [Deploy(pr=SAME_REPO_PR, trigger="opened")],
    "pull_request.reopened.json": [Deploy(pr=SAME_REPO_PR, trigger="reopened")],
    "pull_request.synchronize.json": [Deploy(pr=SAME_REPO_PR, trigger="synchronize")],
    "pull_request.opened.from_fork.json": [Deploy(pr=FORK_PR, trigger="opened")],
    "pull_request.closed.unmerged.json": [Destroy(ref=PR_2, reason="closed", by="Codertocat")],
    "pull_request.closed.merged.json": [Destroy(ref=PR_2, reason="merged", by="Codertocat")],
    "pull_request.labeled.json": [Approve(ref=PR_2, by="Codertocat", sha=HEAD_SHA, label="bug")],
    "pull_request.labeled.by_bot.json": [
        Ignore(reason=f"label 'bug' on {REPO}#2 was added by the bot dependabot[bot]")
    ],
    "pull_request.unlabeled.json": [Ignore(reason=f"pull_request unlabeled on {REPO}#2")],
    "pull_request.ready_for_review.json": [Ignore(reason=f"pull_request ready_for_review on {REPO}#2")],
    "issue_comment.created.on_issue.json": [
        Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 is on an issue, not a pull request")
    ],
    "issue_comment.edited.on_issue.json": [Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 was edited")],
    "issue_comment.deleted.on_issue.json": [Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 was deleted")],
    "issue_comment.edited.on_pr.json": [Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 was edited")],
    "issue_comment.deleted.on_pr.json": [Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 was deleted")],
    "issue_comment.created.on_pr.redeploy.json": [Redeploy(ref=PR_1, by="Codertocat", comment_id=COMMENT_ID)],
    "issue_comment.created.on_pr.retest.json": [Retest(ref=PR_1, by="Codertocat", comment_id=COMMENT_ID)],
    "issue_comment.created.on_pr.destroy.json": [
        Destroy(ref=PR_1, reason="command", by="Codertocat", comment_id=COMMENT_ID)
    ],
    "issue_comment.created.on_pr.status.json": [Status(ref=PR_1, by="Codertocat", comment_id=COMMENT_ID)],
    "issue_comment.created.on_pr.approve.json": [Approve(ref=PR_1, by="Codertocat", sha=None, comment_id=COMMENT_ID)],
    "issue_comment.created.on_pr.help.json": [
        Reply(ref=PR_1, comment_id=COMMENT_ID, by="Codertocat", text=help_text())
    ],
    "issue_comment.created.on_pr.unknown_verb.json": [
        Reply(
            ref=PR_1,
            comment_id=COMMENT_ID,
            by="Codertocat",
            text=error_reply_to("/preview deploy-everything"),
            ok=False,
        )
    ],
    "issue_comment.created.on_pr.several.json": [
        Redeploy(ref=PR_1, by="Codertocat", comment_id=COMMENT_ID),
        Status(ref=PR_1, by="Codertocat", comment_id=COMMENT_ID),
    ],
    "issue_comment.created.on_pr.no_command.json": [
        Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 has no /preview command")
    ],
    "issue_comment.created.on_pr.by_bot.json": [
        Ignore(reason=f"comment {COMMENT_ID} on {REPO}#1 is by the bot github-actions[bot]")
    ],
    "ping.json": [Ignore(reason="ping")],
    "check_suite.completed.json": [Ignore(reason="check_suite event: a build finishing")],
    "workflow_run.completed.json": [Ignore(reason="workflow_run event: a build finishing")],
}


def test_every_fixture_has_an_expectation() -> None:
    assert {path.name for path in FIXTURES.glob("*.json")} == set(EXPECTED_BY_FIXTURE)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_BY_FIXTURE))
def test_fixture(fixture: str) -> None:
    assert_intents(intents_from_event(event_of(fixture), load(fixture)), EXPECTED_BY_FIXTURE[fixture])


@pytest.mark.parametrize("fixture", sorted(EXPECTED_BY_FIXTURE))
def test_fields_github_adds_later_change_nothing(fixture: str) -> None:
    payload = load(fixture)
    payload["added_later"] = {"nested": [1, 2]}
    for part in ("pull_request", "issue", "comment", "sender", "repository"):
        if isinstance(payload.get(part), dict):
            payload[part]["added_later"] = "yes"
    assert_intents(intents_from_event(event_of(fixture), payload), EXPECTED_BY_FIXTURE[fixture])


def test_a_fork_pr_is_from_a_fork() -> None:
    [deploy] = intents_from_event("pull_request", load("pull_request.opened.from_fork.json"))
    assert isinstance(deploy, Deploy)
    assert deploy.pr.from_fork


def comment_on_pr(body: str | None) -> dict[str, Any]:
    payload = load("issue_comment.created.on_pr.redeploy.json")
    payload["comment"]["body"] = body
    return payload


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_becomes_an_intent(verb: str) -> None:
    [intent] = intents_from_event("issue_comment", comment_on_pr(f"/preview {verb}"))
    assert not isinstance(intent, Ignore)
    assert getattr(intent, "ok", True)


def test_commands_in_one_comment_keep_their_order() -> None:
    intents = intents_from_event("issue_comment", comment_on_pr("/preview status\n/preview destroy"))
    assert [type(intent) for intent in intents] == [Status, Destroy]


def test_a_comment_with_a_malformed_command_runs_nothing_and_gets_one_reply() -> None:
    body = "/preview status\n/preview nope\n/preview destroy\n/preview destroy now"
    [reply] = intents_from_event("issue_comment", comment_on_pr(body))
    assert isinstance(reply, Reply)
    assert (reply.ref, reply.comment_id, reply.by, reply.ok) == (PR_1, COMMENT_ID, "Codertocat", False)
    assert reply.text.startswith("previewbot ran nothing from this comment:\n- line 2: that is not a verb")
    assert "- line 4: `/preview destroy` takes nothing" in reply.text


def test_forty_malformed_lines_make_one_reply_that_names_a_few() -> None:
    body = "\n".join(f"/preview nonsense-{index}" for index in range(40))
    [reply] = intents_from_event("issue_comment", comment_on_pr(body))
    assert isinstance(reply, Reply)
    assert reply.text.count("that is not a verb") == ERRORS_SHOWN
    assert f"and {40 - ERRORS_SHOWN} more malformed" in reply.text


def test_an_approval_carries_the_commit_it_names() -> None:
    [approve] = intents_from_event("issue_comment", comment_on_pr("/preview approve " + "1A2B3C4D5E" * 4))
    assert approve == Approve(ref=PR_1, by="Codertocat", sha="1a2b3c4d5e" * 4, comment_id=COMMENT_ID)


def test_a_label_approves_the_head_its_event_carries() -> None:
    payload = load("pull_request.labeled.json")
    payload["pull_request"]["head"]["sha"] = "f" * 40
    [approve] = intents_from_event("pull_request", payload)
    assert isinstance(approve, Approve)
    assert approve.sha == "f" * 40


def test_a_quoted_command_in_a_reply_is_not_run() -> None:
    body = "> /preview destroy\r\n\r\nWhy would we destroy it? It still needs review."
    assert_intents(intents_from_event("issue_comment", comment_on_pr(body)), [Ignore(reason="no /preview")])


def test_a_null_comment_body_has_no_command() -> None:
    assert_intents(intents_from_event("issue_comment", comment_on_pr(None)), [Ignore(reason="no /preview")])


def with_change(fixture: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = copy.deepcopy(load(fixture))
    change(payload)
    return payload


def test_other_pull_request_actions_are_ignored_with_the_action_named() -> None:
    payload = with_change("pull_request.opened.json", lambda p: p.update(action="assigned"))
    assert_intents(
        intents_from_event("pull_request", payload),
        [Ignore(reason=f"pull_request assigned on {REPO}#2: previewbot acts on opened, reopened")],
    )


def test_a_closed_pr_without_a_sender_is_destroyed_by_nobody() -> None:
    payload = with_change("pull_request.closed.unmerged.json", lambda p: p.pop("sender"))
    assert intents_from_event("pull_request", payload) == [Destroy(ref=PR_2, reason="closed")]


def test_a_pr_whose_fork_was_deleted_stays_a_fork() -> None:
    payload = with_change("pull_request.opened.from_fork.json", lambda p: p["pull_request"]["head"].update(repo=None))
    [deploy] = intents_from_event("pull_request", payload)
    assert isinstance(deploy, Deploy)
    assert deploy.pr.head_repo == ""
    assert deploy.pr.from_fork


def test_ping_and_unknown_events_are_ignored() -> None:
    assert_intents(intents_from_event("ping", load("ping.json")), [Ignore(reason="ping")])
    assert_intents(intents_from_event("push", {"ref": "refs/heads/main"}), [Ignore(reason="push event")])
    assert_intents(intents_from_event("", {}), [Ignore(reason="unnamed event")])


def drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]

    return change


def put(value: object, *path: str) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("fixture", "change", "message"),
    [
        pytest.param(
            "pull_request.opened.json",
            drop("pull_request", "number"),
            "pull_request event: pull_request.number is missing",
            id="pr-number-missing",
        ),
        pytest.param(
            "pull_request.closed.unmerged.json",
            drop("pull_request", "number"),
            "pull_request event: pull_request.number is missing",
            id="closed-pr-number-missing",
        ),
        pytest.param(
            "pull_request.opened.json",
            put("2", "pull_request", "number"),
            "pull_request event: pull_request.number is a string, expected a number",
            id="pr-number-a-string",
        ),
        pytest.param(
            "pull_request.opened.json",
            put(True, "pull_request", "number"),
            "pull_request event: pull_request.number is true or false, expected a number",
            id="pr-number-a-boolean",
        ),
        pytest.param(
            "pull_request.opened.json",
            drop("pull_request"),
            "pull_request event: pull_request is missing",
            id="pr-missing",
        ),
        pytest.param(
            "pull_request.opened.json",
            put("2", "pull_request"),
            "pull_request event: pull_request is a string, expected an object",
            id="pr-a-string",
        ),
        pytest.param(
            "pull_request.opened.json",
            drop("action"),
            "pull_request event: action is missing",
            id="action-missing",
        ),
        pytest.param(
            "pull_request.synchronize.json",
            put(None, "pull_request", "head", "sha"),
            "pull_request event: pull_request.head.sha is missing",
            id="head-sha-null",
        ),
        pytest.param(
            "pull_request.opened.json",
            put([], "pull_request", "base"),
            "pull_request event: pull_request.base is an array, expected an object",
            id="base-an-array",
        ),
        pytest.param(
            "pull_request.labeled.json",
            drop("label"),
            "pull_request event: label.name is missing",
            id="label-missing",
        ),
        pytest.param(
            "pull_request.labeled.json",
            drop("sender"),
            "pull_request event: sender.login is missing",
            id="labeled-sender-missing",
        ),
        pytest.param(
            "issue_comment.created.on_pr.redeploy.json",
            drop("comment"),
            "issue_comment event: comment.id is missing",
            id="comment-missing",
        ),
        pytest.param(
            "issue_comment.created.on_pr.redeploy.json",
            put(None, "issue", "number"),
            "issue_comment event: issue.number is missing",
            id="issue-number-null",
        ),
        pytest.param(
            "issue_comment.created.on_pr.redeploy.json",
            drop("comment", "user"),
            "issue_comment event: comment.user.login is missing",
            id="comment-author-missing",
        ),
        pytest.param(
            "issue_comment.created.on_pr.redeploy.json",
            put(["Codertocat/Hello-World"], "repository"),
            "issue_comment event: repository is an array, expected an object",
            id="repository-an-array",
        ),
        pytest.param(
            "issue_comment.created.on_pr.redeploy.json",
            put(42, "comment", "body"),
            "issue_comment event: comment.body is a number, expected a string",
            id="comment-body-a-number",
        ),
    ],
)
def test_broken_payloads(fixture: str, change: Callable[[dict[str, Any]], None], message: str) -> None:
    payload = with_change(fixture, change)
    with pytest.raises(EventError) as raised:
        intents_from_event(event_of(fixture), payload)
    assert str(raised.value) == message


def test_pull_request_from_payload() -> None:
    assert pull_request_from_payload(load("pull_request.opened.json")["pull_request"]) == SAME_REPO_PR


def test_pull_request_from_payload_is_lenient_about_optional_fields() -> None:
    pr = load("pull_request.closed.merged.json")["pull_request"]
    for optional in ("merged", "labels", "html_url", "state"):
        del pr[optional]
    parsed = pull_request_from_payload(pr)
    assert (parsed.merged, parsed.labels, parsed.html_url, parsed.state) == (True, (), "", "open")


def test_pull_request_from_payload_names_a_missing_field() -> None:
    pr = load("pull_request.opened.json")["pull_request"]
    del pr["user"]
    with pytest.raises(EventError, match=r"^pull request: pull_request\.user\.login is missing$"):
        pull_request_from_payload(pr)


@pytest.mark.parametrize(
    ("login", "user_type", "expected"),
    [
        ("dependabot[bot]", "Bot", True),
        ("github-actions[bot]", None, True),
        ("renovate", "Bot", True),
        ("someone[BOT]", "User", True),
        ("Codertocat", "User", False),
        ("robot", None, False),
        ("bot", "Organization", False),
    ],
)
def test_is_bot(login: str, user_type: str | None, expected: bool) -> None:
    assert is_bot(login, user_type) is expected


def test_read_event_file(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_bytes((FIXTURES / "pull_request.opened.json").read_bytes())
    assert read_event_file(path) == load("pull_request.opened.json")
    assert read_event_file(str(path)) == load("pull_request.opened.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, r"cannot read the event file .*event\.json: No such file", id="missing"),
        pytest.param(b'{"action": ', r"event\.json is not valid JSON: Expecting value at line 1, column 12", id="cut"),
        pytest.param(b"[1, 2]", r"event\.json holds an array, not an event object", id="not-an-object"),
        pytest.param(b'{"a": "\xff"}', r"cannot read the event file .*event\.json: it is not UTF-8 text", id="binary"),
    ],
)
def test_unreadable_event_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "event.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EventError, match=message) as raised:
        read_event_file(path)
    assert str(path) in str(raised.value)


def test_a_schedule_sweeps_the_repo_named_by_the_runner() -> None:
    assert intents_from_event("schedule", {"schedule": "0 * * * *"}, repository="o/r") == [Collect(repo="o/r")]


def test_a_hand_started_run_sweeps_the_repo_of_its_payload() -> None:
    payload = {"repository": {"full_name": "Codertocat/Hello-World"}, "inputs": {}}
    assert intents_from_event("workflow_dispatch", payload, repository="o/r") == [
        Collect(repo="Codertocat/Hello-World")
    ]


def test_a_sweep_with_no_repository_at_all_is_an_event_error() -> None:
    with pytest.raises(EventError, match=r"repository\.full_name"):
        intents_from_event("schedule", {"schedule": "0 * * * *"})


def test_a_finished_check_suite_names_the_commit_and_the_prs_it_built() -> None:
    build = build_from_event("check_suite", load("check_suite.completed.json"))
    assert build == BuildFinished(
        repo=REPO,
        sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
        name="octocoders-linter",
        conclusion="success",
        numbers=(2,),
    )


def test_a_finished_workflow_run_is_named_after_its_workflow() -> None:
    build = build_from_event("workflow_run", load("workflow_run.completed.json"))
    assert build is not None
    assert (build.repo, build.name, build.conclusion, build.numbers) == ("octo-org/octo-repo", "test", "success", (2,))


def test_only_a_completed_build_counts() -> None:
    payload = load("check_suite.completed.json")
    payload["action"] = "requested"
    assert build_from_event("check_suite", payload) is None
    assert build_from_event("pull_request", load("pull_request.opened.json")) is None


def test_a_build_without_its_commit_is_an_event_error() -> None:
    payload = load("workflow_run.completed.json")
    del payload["workflow_run"]["head_sha"]
    with pytest.raises(EventError, match=r"workflow_run\.head_sha is missing"):
        build_from_event("workflow_run", payload)
