"""Time limits that count activity, `/preview keep` and the keep label, and `/preview wake`.

previewbot runs with its real adapters against the emulated GitHub and the emulated (or a real)
Kubernetes API; a controllable clock stands in for the hours that pass between runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from previewbot import naming, render
from previewbot.model import Phase
from tests.harness import (
    DEFAULT_BRANCH,
    PR_NUMBER,
    REPO,
    Bot,
    Checkout,
    comment_event,
    namespace_phase,
    pr_event,
    preview_config,
    web_deployment,
)

SWEEP = {"schedule": "0 * * * *"}


@pytest.fixture
def checkout(checkout: Checkout, github: Any, prefix: str, site: str) -> Checkout:
    config = preview_config(prefix=prefix, site=site, more="ttl: 2h\nsleep_after: 1h\n")
    checkout.write(".preview.yml", config)
    checkout.write("deploy/web.yaml", web_deployment())
    github.add_file(REPO, ".preview.yml", config, ref=DEFAULT_BRANCH)
    github.set_permission(REPO, "Codertocat", "admin")
    return checkout


def later(bot: Bot, hours: float) -> None:
    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=hours)


def command(bot: Bot, github: Any, body: str, *, user: str = "Codertocat") -> Any:
    _, event = comment_event(github, body, user=user)
    [outcome] = bot.on("issue_comment", event)
    return outcome


def sticky(github: Any) -> str:
    [body] = [c.body for c in github.comments(REPO, PR_NUMBER) if render.is_preview_comment(c.body)]
    return body


def namespace_of(prefix: str) -> str:
    return naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)


def test_a_command_counts_as_activity_and_moves_the_time_limit_on(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    bot.on("pull_request", pr_event("opened"))
    name = namespace_of(prefix)

    later(bot, 1.5)
    command(bot, github, "/preview status")
    [reply] = [c.body for c in github.comments(REPO, PR_NUMBER) if "expires" in c.body and "unless" in c.body]
    assert reply.startswith("✅")
    moved = naming.parse_time(core.read_namespace(name).metadata.annotations[naming.EXPIRES_AT_ANNOTATION])
    assert moved is not None
    assert moved - datetime.now(UTC) > timedelta(hours=3, minutes=20)

    later(bot, 3)  # 3 hours after the deploy, 1.5 after the command: within the limit
    bot.on("schedule", SWEEP)
    assert namespace_phase(core, name) == "Active"

    later(bot, 4)
    bot.on("schedule", SWEEP)
    assert namespace_phase(core, name) in ("Terminating", None)


def test_keep_pins_a_preview_and_keep_off_lets_it_go(
    bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str
) -> None:
    bot.on("pull_request", pr_event("opened"))
    name = namespace_of(prefix)

    kept = command(bot, github, "/preview keep")

    assert kept.message == "kept"
    assert "Kept by @Codertocat" in sticky(github)
    assert "never: kept" in sticky(github)
    later(bot, 24 * 10)
    bot.on("schedule", SWEEP)
    assert namespace_phase(core, name) == "Active"
    assert not core.read_namespace(name).metadata.annotations.get(naming.SLEEPING_ANNOTATION)

    bot.clock = lambda: datetime.now(UTC)
    command(bot, github, "/preview keep off")
    later(bot, 3)
    bot.on("schedule", SWEEP)
    assert namespace_phase(core, name) in ("Terminating", None)


def test_the_keep_label_pins_a_preview(bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened"))
    github.update_pull(REPO, PR_NUMBER, labels=["bug", "preview-keep"])

    later(bot, 24 * 10)
    bot.on("schedule", SWEEP)

    assert namespace_phase(core, namespace_of(prefix)) == "Active"


def test_a_stranger_cannot_keep_a_preview(bot: Bot, github: Any, core: Any, checkout: Checkout, prefix: str) -> None:
    bot.on("pull_request", pr_event("opened"))

    refused = command(bot, github, "/preview keep", user="mallory")

    assert refused.status == "refused"
    assert naming.KEEP_ANNOTATION not in core.read_namespace(namespace_of(prefix)).metadata.annotations


def test_wake_scales_a_sleeping_preview_back_and_says_so(
    bot: Bot, github: Any, core: Any, apps: Any, checkout: Checkout, prefix: str
) -> None:
    bot.on("pull_request", pr_event("opened"))
    name = namespace_of(prefix)
    later(bot, 1.5)
    bot.on("schedule", SWEEP)
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 0
    assert "Preview asleep" in sticky(github)

    woken = command(bot, github, "/preview wake")

    assert woken.status == Phase.READY
    web = apps.read_namespaced_deployment("web", name)
    assert (web.spec.replicas, web.status.available_replicas) == (1, 1)
    assert naming.SLEEPING_ANNOTATION not in core.read_namespace(name).metadata.annotations
    assert "Woken by @Codertocat" in sticky(github)
    assert "Preview ready" in sticky(github)

    again = command(bot, github, "/preview wake")
    assert again.message == "not asleep"
