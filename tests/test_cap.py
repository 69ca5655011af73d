"""The cap on a repo's live previews: a PR that finds it reached waits in line, is refused, or makes room.

Scenarios run previewbot with its real adapters against the emulated GitHub and the emulated (or a
real) Kubernetes API. Every PR here deploys the same checkout, which is all a slot needs to be filled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from previewbot import naming, render
from previewbot.model import Deploy, Phase
from tests.harness import REPO, Bot, Checkout, namespace_phase, pr_event, preview_config, web_deployment


def opened(github: Any, number: int) -> dict[str, Any]:
    """PR `number` is opened: GitHub's example event, renumbered, and the PR as the API shows it."""
    event = pr_event("opened", sha=f"{number:x}" * 40)
    event["number"] = event["pull_request"]["number"] = number
    github.add_pull(event["pull_request"])
    return event


def closed(github: Any, number: int) -> dict[str, Any]:
    event = pr_event("closed", sha=f"{number:x}" * 40)
    event["number"] = event["pull_request"]["number"] = number
    github.update_pull(REPO, number, state="closed")
    return event


def sticky(github: Any, number: int) -> str:
    [comment] = [c.body for c in github.comments(REPO, number) if render.is_preview_comment(c.body)]
    return comment


@pytest.fixture
def limited(github: Any, checkout: Checkout, prefix: str, site: str) -> Any:
    """The repo allows `limit` live previews, with the given policy, in its default branch's config too."""

    def configure(limit: int, when_full: str) -> None:
        config = preview_config(prefix=prefix, site=site, more=f"max_previews: {limit}\nwhen_full: {when_full}\n")
        checkout.write(".preview.yml", config)
        checkout.write("deploy/web.yaml", web_deployment())
        github.add_file(REPO, ".preview.yml", config, ref="master")

    return configure


def namespace_of(prefix: str, number: int) -> str:
    return naming.namespace_name(prefix=prefix, repo=REPO, number=number)


def test_a_pr_over_the_cap_waits_in_line_and_deploys_when_a_slot_frees(
    bot: Bot, github: Any, core: Any, apps: Any, limited: Any, prefix: str
) -> None:
    limited(1, "queue")
    [first] = bot.on("pull_request", opened(github, 2))
    assert first.status == Phase.READY

    [second] = bot.on("pull_request", opened(github, 3))
    [third] = bot.on("pull_request", opened(github, 4))

    assert (second.status, second.message) == (Phase.PENDING, "queued, number 1 in line")
    assert third.message == "queued, number 2 in line"
    assert "number 2 in line" in sticky(github, 4)
    assert apps.list_namespaced_deployment(namespace_of(prefix, 3)).items == []
    [status] = [s for s in github.statuses(REPO, "3" * 40) if s.context == "previewbot/deploy"]
    assert status.state == "pending"

    [gone] = bot.on("pull_request", closed(github, 2))
    [not_yet] = bot.on("pull_request", opened(github, 4))  # a push of the second in line: the first goes first
    assert not_yet.message == "queued, number 2 in line"

    [next_up] = gone.follow_up
    assert isinstance(next_up, Deploy)
    assert next_up.pr.number == 3
    [deployed] = bot.run(next_up)
    assert deployed.status == Phase.READY
    assert naming.QUEUED_AT_ANNOTATION not in core.read_namespace(namespace_of(prefix, 3)).metadata.annotations
    assert "Preview ready" in sticky(github, 3)
    [still_waiting] = bot.on("pull_request", opened(github, 4))
    assert still_waiting.message == "queued, number 1 in line"


def test_a_redeploy_of_a_live_preview_never_waits(bot: Bot, github: Any, limited: Any) -> None:
    limited(1, "queue")
    bot.on("pull_request", opened(github, 2))
    github.update_pull(REPO, 2, head_sha="9" * 40)

    [again] = bot.on("pull_request", pr_event("synchronize", sha="9" * 40))

    assert again.status == Phase.READY


def test_refuse_says_why_and_deploys_nothing(bot: Bot, github: Any, limited: Any, prefix: str, core: Any) -> None:
    limited(1, "refuse")
    bot.on("pull_request", opened(github, 2))

    [refused] = bot.on("pull_request", opened(github, 3))

    assert refused.status == "refused"
    assert "`when_full` is `refuse`" in sticky(github, 3)
    assert namespace_phase(core, namespace_of(prefix, 3)) is None
    [status] = [s for s in github.statuses(REPO, "3" * 40) if s.context == "previewbot/deploy"]
    assert status.state == "error"


def test_evict_oldest_idle_puts_the_least_recently_active_preview_to_sleep(
    bot: Bot, github: Any, apps: Any, limited: Any, prefix: str
) -> None:
    limited(2, "evict-oldest-idle")
    bot.clock = lambda: datetime.now(UTC) - timedelta(hours=2)
    bot.on("pull_request", opened(github, 2))
    bot.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
    bot.on("pull_request", opened(github, 3))
    bot.clock = lambda: datetime.now(UTC)

    [made_room] = bot.on("pull_request", opened(github, 4))

    assert made_room.status == Phase.READY
    assert apps.read_namespaced_deployment("web", namespace_of(prefix, 2)).spec.replicas == 0
    assert apps.read_namespaced_deployment("web", namespace_of(prefix, 3)).spec.replicas == 1
    assert "to make room for #4" in sticky(github, 2)
    assert "/preview wake" in sticky(github, 2)
