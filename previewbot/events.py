"""GitHub events, from a webhook delivery or the Action's event file, turned into intents.

Pure but for read_event_file. A payload that lacks what its event must carry raises
EventError naming the field; anything else GitHub adds over time is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from previewbot.commands import Command, CommandError, error_reply, help_text, parse_comment
from previewbot.errors import EventError
from previewbot.model import (
    Approve,
    Collect,
    Deploy,
    Destroy,
    Ignore,
    Intent,
    Keep,
    PrRef,
    PullRequest,
    Redeploy,
    Reply,
    Retest,
    Status,
    Wake,
)

_DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
# Scheduled and hand-started runs sweep away what events missed (closed PRs, expired previews).
_SWEEP_EVENTS = ("schedule", "workflow_dispatch")
_HANDLED_ACTIONS = "opened, reopened, synchronize, closed and labeled"
# A finished build of a PR's images: the webhook server may deploy what waited for it (deploy.after).
_BUILD_EVENTS = ("check_suite", "workflow_run")

_JSON_TYPES: Mapping[type, str] = {
    bool: "true or false",
    int: "a number",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
}

_Value = TypeVar("_Value")


def read_event_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The event payload in a JSON file, such as the one the Action's GITHUB_EVENT_PATH names."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise EventError(f"cannot read the event file {path}: {error.strerror or 'unreadable'}") from error
    except UnicodeDecodeError as error:
        raise EventError(f"cannot read the event file {path}: it is not UTF-8 text") from error
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise EventError(
            f"the event file {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from error
    if not isinstance(payload, dict):
        raise EventError(f"the event file {path} holds {_json_type(payload)}, not an event object")
    return payload


def intents_from_event(event_name: str, payload: Mapping[str, Any], *, repository: str | None = None) -> list[Intent]:
    """What previewbot should do about one event; `event_name` is the X-GitHub-Event header's value.

    `repository` ("owner/name") stands in for a payload that names none, as a schedule's may not.
    """
    event = _Fields(payload, context=f"{event_name} event")
    if event_name in _SWEEP_EVENTS:
        repo = event.optional("repository.full_name", str) or repository
        if not repo:
            raise EventError(f"{event_name} event: repository.full_name is missing")
        return [Collect(repo=repo)]
    if event_name == "pull_request":
        return _pull_request_intents(event)
    if event_name == "issue_comment":
        return _comment_intents(event)
    if event_name == "ping":
        return [Ignore(reason="ping: GitHub is checking that the webhook answers; nothing to do")]
    if event_name in _BUILD_EVENTS:
        return [Ignore(reason=f"{event_name} event: a build finishing starts a deploy only when it was waited for")]
    return [Ignore(reason=f"{event_name or 'unnamed'} event: previewbot acts on pull requests and comments")]


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildFinished:
    """A check suite or workflow run that completed for a commit, and the PRs GitHub says it built."""

    repo: str
    sha: str
    name: str  # the workflow's name, or the check suite's app
    conclusion: str  # success, failure, neutral, cancelled, skipped, timed_out, action_required, stale
    numbers: tuple[int, ...]  # empty for a fork's PR: GitHub lists only PRs of the repo itself


def build_from_event(event_name: str, payload: Mapping[str, Any]) -> BuildFinished | None:
    """The finished build a check_suite or workflow_run event tells of; None for any other event or action."""
    if event_name not in _BUILD_EVENTS:
        return None
    event = _Fields(payload, context=f"{event_name} event")
    if event.required("action", str) != "completed":
        return None
    run = event.child(event_name)
    name_path = "workflow.name" if event_name == "workflow_run" else "check_suite.app.name"
    return BuildFinished(
        repo=event.required("repository.full_name", str),
        sha=run.required("head_sha", str),
        name=event.optional(name_path, str) or "",
        conclusion=run.optional("conclusion", str) or "",
        numbers=tuple(
            pr["number"]
            for pr in run.optional("pull_requests", list) or []
            if isinstance(pr, Mapping) and isinstance(pr.get("number"), int)
        ),
    )


def pull_request_from_payload(pr: Mapping[str, Any]) -> PullRequest:
    """The PullRequest in a payload's `pull_request` object."""
    return _pull_request(_Fields(pr, context="pull request", prefix="pull_request"))


def is_bot(login: str, user_type: str | None) -> bool:
    """True for GitHub Apps and other bot accounts, previewbot's own among them."""
    return (user_type or "").casefold() == "bot" or login.casefold().endswith("[bot]")


def _pull_request_intents(event: _Fields) -> list[Intent]:
    action = event.required("action", str)
    pr = _pull_request(event.child("pull_request"))
    if action in _DEPLOY_ACTIONS:
        return [Deploy(pr=pr, trigger=action)]
    if action == "closed":
        reason = "merged" if pr.merged else "closed"
        return [Destroy(ref=pr.ref, reason=reason, by=event.optional("sender.login", str))]
    if action == "labeled":
        return [_label_intent(event, pr)]
    return [Ignore(reason=f"pull_request {action} on {_name(pr.ref)}: previewbot acts on {_HANDLED_ACTIONS}")]


def _label_intent(event: _Fields, pr: PullRequest) -> Intent:
    label = event.required("label.name", str)
    sender = event.required("sender.login", str)
    if is_bot(sender, event.optional("sender.type", str)):
        return Ignore(reason=f"label '{label}' on {_name(pr.ref)} was added by the bot {sender}; a bot never approves")
    # The label approves what its adder saw: the head when it was added, not whatever the head is later.
    return Approve(ref=pr.ref, by=sender, sha=pr.head_sha, label=label)


def _comment_intents(event: _Fields) -> list[Intent]:
    action = event.required("action", str)
    ref = PrRef(repo=event.required("repository.full_name", str), number=event.required("issue.number", int))
    comment_id = event.required("comment.id", int)
    comment = f"comment {comment_id} on {_name(ref)}"
    if action != "created":
        return [Ignore(reason=f"{comment} was {action}; only new comments carry commands")]
    if event.optional("issue.pull_request", dict) is None:
        return [Ignore(reason=f"{comment} is on an issue, not a pull request")]
    author = event.required("comment.user.login", str)
    if is_bot(author, event.optional("comment.user.type", str)):
        return [Ignore(reason=f"{comment} is by the bot {author}; bots never run commands")]
    found = parse_comment(event.optional("comment.body", str) or "")
    if not found:
        return [Ignore(reason=f"{comment} has no /preview command")]
    errors = [item for item in found if isinstance(item, CommandError)]
    if errors:
        # A comment with a malformed command runs nothing and gets one reply, however many lines it holds.
        return [Reply(ref=ref, comment_id=comment_id, by=author, text=error_reply(errors), ok=False)]
    commands = [item for item in found if isinstance(item, Command)]
    return [_VERB_INTENTS[command.verb](ref, author, comment_id, command.args) for command in commands]


_VERB_INTENTS: Mapping[str, Callable[[PrRef, str, int, tuple[str, ...]], Intent]] = {
    "redeploy": lambda ref, by, comment_id, _args: Redeploy(ref=ref, by=by, comment_id=comment_id),
    "retest": lambda ref, by, comment_id, _args: Retest(ref=ref, by=by, comment_id=comment_id),
    "destroy": lambda ref, by, comment_id, _args: Destroy(ref=ref, reason="command", by=by, comment_id=comment_id),
    "status": lambda ref, by, comment_id, _args: Status(ref=ref, by=by, comment_id=comment_id),
    "approve": lambda ref, by, comment_id, args: Approve(
        ref=ref, by=by, sha=args[0] if args else None, comment_id=comment_id
    ),
    "help": lambda ref, by, comment_id, _args: Reply(ref=ref, comment_id=comment_id, by=by, text=help_text()),
    "keep": lambda ref, by, comment_id, args: Keep(ref=ref, by=by, comment_id=comment_id, on=args != ("off",)),
    "wake": lambda ref, by, comment_id, _args: Wake(ref=ref, by=by, comment_id=comment_id),
}


def _pull_request(pr: _Fields) -> PullRequest:
    return PullRequest(
        repo=pr.required("base.repo.full_name", str),
        number=pr.required("number", int),
        head_sha=pr.required("head.sha", str),
        head_ref=pr.required("head.ref", str),
        base_ref=pr.required("base.ref", str),
        default_branch=pr.required("base.repo.default_branch", str),
        author=pr.required("user.login", str),
        # GitHub sends a null head repository once a fork is deleted; an empty name keeps
        # such a PR a fork for every check that asks.
        head_repo=pr.optional("head.repo.full_name", str) or "",
        state=pr.optional("state", str) or "open",
        # The REST API's PR lists carry merged_at but no merged flag.
        merged=bool(pr.optional("merged", bool)) or pr.optional("merged_at", str) is not None,
        labels=tuple(
            label["name"]
            for label in pr.optional("labels", list) or []
            if isinstance(label, Mapping) and isinstance(label.get("name"), str)
        ),
        html_url=pr.optional("html_url", str) or "",
    )


@dataclass(frozen=True, slots=True)
class _Fields:
    """Typed reads of one JSON object of a payload; errors name a field by its dotted path."""

    data: Mapping[str, Any]
    context: str  # what the payload is, for error messages: "pull_request event"
    prefix: str = ""  # where data sits in the payload

    def required(self, path: str, kind: type[_Value]) -> _Value:
        value = self.optional(path, kind)
        if value is None:
            raise EventError(f"{self.context}: {self._full(path)} is missing")
        return value

    def optional(self, path: str, kind: type[_Value]) -> _Value | None:
        """The field's value, or None when it is missing or null."""
        value: object = self.data
        keys = path.split(".")
        for depth, key in enumerate(keys):
            if not isinstance(value, Mapping):
                parent = self._full(".".join(keys[:depth])) or "the payload"
                raise EventError(f"{self.context}: {parent} is {_json_type(value)}, expected an object")
            value = value.get(key)
            if value is None:
                return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise EventError(f"{self.context}: {self._full(path)} is {_json_type(value)}, expected {_JSON_TYPES[kind]}")
        return value

    def child(self, path: str) -> _Fields:
        return _Fields(self.required(path, dict), context=self.context, prefix=self._full(path))

    def _full(self, path: str) -> str:
        return ".".join(part for part in (self.prefix, path) if part)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _name(ref: PrRef) -> str:
    return f"{ref.repo}#{ref.number}"
