"""Time limits that count activity, `/preview keep` and the keep label, and `/preview wake`.

previewbot runs with its real adapters against the emulated GitHub and the emulated (or a real)
Kubernetes API, each on a repo of its own (its sweeps act on every preview of the repo); a controllable
clock stands in for the hours that pass between runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from previewbot import naming
from previewbot.model import Phase
from tests.harness import PR_NUMBER, Bot, Checkout, OwnRepo, namespace_phase


@pytest.fixture
def repo(own_repo: OwnRepo, checkout: Checkout, github: Any) -> OwnRepo:
    own_repo.default_config("ttl: 2h\nsleep_after: 1h\n", limit=None, checkout=checkout)
    github.set_permission(own_repo.name, "Codertocat", "admin")
    github.add_pull(repo=own_repo.name, number=PR_NUMBER)
    return own_repo


def later(bot: Bot, hours: float) -> None:
    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=hours)


def command(bot: Bot, repo: OwnRepo, body: str, *, user: str = "Codertocat") -> Any:
    [outcome] = bot.on("issue_comment", repo.comment(PR_NUMBER, body, user=user))
    return outcome


def opened(bot: Bot, repo: OwnRepo) -> str:
    bot.on("pull_request", repo.opened(PR_NUMBER))
    return repo.namespace(PR_NUMBER)


def sweep(bot: Bot, repo: OwnRepo) -> None:
    bot.on("schedule", {"schedule": "0 * * * *", "repository": {"full_name": repo.name}})


def test_a_command_counts_as_activity_and_moves_the_time_limit_on(
    bot: Bot, github: Any, core: Any, repo: OwnRepo
) -> None:
    name = opened(bot, repo)

    later(bot, 1.5)
    command(bot, repo, "/preview status")
    [reply] = [c.body for c in github.comments(repo.name, PR_NUMBER) if "expires" in c.body and "unless" in c.body]
    assert reply.startswith("✅")
    moved = naming.parse_time(core.read_namespace(name).metadata.annotations[naming.EXPIRES_AT_ANNOTATION])
    assert moved is not None
    assert moved - datetime.now(UTC) > timedelta(hours=3, minutes=20)

    later(bot, 3)  # 3 hours after the deploy, 1.5 after the command: within the limit
    sweep(bot, repo)
    assert namespace_phase(core, name) == "Active"

    later(bot, 4)
    sweep(bot, repo)
    assert namespace_phase(core, name) in ("Terminating", None)


def test_keep_pins_a_preview_and_keep_off_lets_it_go(bot: Bot, core: Any, repo: OwnRepo) -> None:
    name = opened(bot, repo)

    kept = command(bot, repo, "/preview keep")

    assert kept.message == "kept"
    assert "Kept by @Codertocat" in repo.sticky(PR_NUMBER)
    assert "never: kept" in repo.sticky(PR_NUMBER)
    later(bot, 24 * 10)
    sweep(bot, repo)
    assert namespace_phase(core, name) == "Active"
    assert not core.read_namespace(name).metadata.annotations.get(naming.SLEEPING_ANNOTATION)

    bot.clock = lambda: datetime.now(UTC)
    command(bot, repo, "/preview keep off")
    later(bot, 3)
    sweep(bot, repo)
    assert namespace_phase(core, name) in ("Terminating", None)


def test_the_keep_label_pins_a_preview(bot: Bot, github: Any, core: Any, repo: OwnRepo) -> None:
    name = opened(bot, repo)
    github.update_pull(repo.name, PR_NUMBER, labels=["bug", "preview-keep"])

    later(bot, 24 * 10)
    sweep(bot, repo)

    assert namespace_phase(core, name) == "Active"


def test_a_stranger_cannot_keep_a_preview(bot: Bot, core: Any, repo: OwnRepo) -> None:
    name = opened(bot, repo)

    refused = command(bot, repo, "/preview keep", user="mallory")

    assert refused.status == "refused"
    assert naming.KEEP_ANNOTATION not in core.read_namespace(name).metadata.annotations


def test_wake_scales_a_sleeping_preview_back_and_says_so(bot: Bot, core: Any, apps: Any, repo: OwnRepo) -> None:
    name = opened(bot, repo)
    later(bot, 1.5)
    sweep(bot, repo)
    assert apps.read_namespaced_deployment("web", name).spec.replicas == 0
    assert "Preview asleep" in repo.sticky(PR_NUMBER)

    woken = command(bot, repo, "/preview wake")

    assert woken.status == Phase.READY
    web = apps.read_namespaced_deployment("web", name)
    assert (web.spec.replicas, web.status.available_replicas) == (1, 1)
    assert naming.SLEEPING_ANNOTATION not in core.read_namespace(name).metadata.annotations
    assert "Woken by @Codertocat" in repo.sticky(PR_NUMBER)
    assert "Preview ready" in repo.sticky(PR_NUMBER)

    again = command(bot, repo, "/preview wake")
    assert again.message == "not asleep"
