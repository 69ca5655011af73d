"""The cap on a repo's live previews: a PR that finds it reached waits in line, is refused, or makes room.

Scenarios run previewbot with its real adapters against the emulated GitHub and the emulated (or a
real) Kubernetes API, each on a repo of its own: the cap counts every live preview of a repo, and a
real cluster is shared. Every PR here deploys the same checkout, which is all a slot needs to be filled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from previewbot import naming
from previewbot.model import Deploy, Phase
from tests.harness import Bot, Checkout, OwnRepo, namespace_phase, preview_config


@pytest.fixture
def limited(own_repo: OwnRepo, checkout: Checkout) -> Any:
    """The repo allows `limit` live previews, with the given policy, in its default branch's config too."""

    def configure(limit: int, when_full: str) -> None:
        own_repo.default_config(f"max_previews: {limit}\nwhen_full: {when_full}\n", limit=None, checkout=checkout)

    return configure


def test_a_pr_over_the_cap_waits_in_line_and_deploys_when_a_slot_frees(
    bot: Bot, own_repo: OwnRepo, core: Any, apps: Any, limited: Any
) -> None:
    limited(1, "queue")
    [first] = bot.on("pull_request", own_repo.opened(2))
    assert first.status == Phase.READY

    [second] = bot.on("pull_request", own_repo.opened(3))
    [third] = bot.on("pull_request", own_repo.opened(4))

    assert (second.status, second.message) == (Phase.PENDING, "queued, number 1 in line")
    assert third.message == "queued, number 2 in line"
    assert "number 2 in line" in own_repo.sticky(4)
    assert apps.list_namespaced_deployment(own_repo.namespace(3)).items == []
    assert own_repo.deploy_status("3" * 40) == "pending"

    [gone] = bot.on("pull_request", own_repo.closed(2))
    [not_yet] = bot.on("pull_request", own_repo.opened(4))  # a push of the second in line: the first goes first
    assert not_yet.message == "queued, number 2 in line"

    [next_up] = gone.follow_up
    assert isinstance(next_up, Deploy)
    assert next_up.pr.number == 3
    [deployed] = bot.run(next_up)
    assert deployed.status == Phase.READY
    assert naming.QUEUED_AT_ANNOTATION not in core.read_namespace(own_repo.namespace(3)).metadata.annotations
    assert "Preview ready" in own_repo.sticky(3)
    [still_waiting] = bot.on("pull_request", own_repo.opened(4))
    assert still_waiting.message == "queued, number 1 in line"


def test_a_redeploy_of_a_live_preview_never_waits(bot: Bot, own_repo: OwnRepo, limited: Any) -> None:
    limited(1, "queue")
    bot.on("pull_request", own_repo.opened(2))

    [again] = bot.on("pull_request", own_repo.pushed(2, "9" * 40))

    assert again.status == Phase.READY


def test_refuse_says_why_and_deploys_nothing(bot: Bot, own_repo: OwnRepo, limited: Any, core: Any) -> None:
    limited(1, "refuse")
    bot.on("pull_request", own_repo.opened(2))

    [refused] = bot.on("pull_request", own_repo.opened(3))

    assert refused.status == "refused"
    assert "`when_full` is `refuse`" in own_repo.sticky(3)
    assert namespace_phase(core, own_repo.namespace(3)) is None
    assert own_repo.deploy_status("3" * 40) == "error"


def test_evict_oldest_idle_puts_the_least_recently_active_preview_to_sleep(
    bot: Bot, own_repo: OwnRepo, apps: Any, limited: Any
) -> None:
    limited(2, "evict-oldest-idle")
    bot.clock = lambda: datetime.now(UTC) - timedelta(hours=2)
    bot.on("pull_request", own_repo.opened(2))
    bot.clock = lambda: datetime.now(UTC) - timedelta(hours=1)
    bot.on("pull_request", own_repo.opened(3))
    bot.clock = lambda: datetime.now(UTC)

    [made_room] = bot.on("pull_request", own_repo.opened(4))

    assert made_room.status == Phase.READY
    assert apps.read_namespaced_deployment("web", own_repo.namespace(2)).spec.replicas == 0
    assert apps.read_namespaced_deployment("web", own_repo.namespace(3)).spec.replicas == 1
    assert "to make room for #4" in own_repo.sticky(2)
    assert "/preview wake" in own_repo.sticky(2)


def test_a_wake_over_the_cap_waits_in_line_and_the_freed_slot_wakes_it(
    bot: Bot, github: Any, own_repo: OwnRepo, apps: Any, checkout: Checkout
) -> None:
    own_repo.default_config("sleep_after: 1h\n", limit=1, checkout=checkout)
    github.set_permission(own_repo.name, "Codertocat", "admin")
    bot.on("pull_request", own_repo.opened(2))
    bot.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    bot.on("schedule", {"schedule": "0 * * * *", "repository": {"full_name": own_repo.name}})
    bot.clock = lambda: datetime.now(UTC)
    [other] = bot.on("pull_request", own_repo.opened(3))  # the sleeping preview holds no slot
    assert other.status == Phase.READY

    [waiting] = bot.on("issue_comment", own_repo.comment(2, "/preview wake"))

    assert waiting.status == Phase.PENDING
    assert "number 1 in line" in waiting.message
    assert apps.read_namespaced_deployment("web", own_repo.namespace(2)).spec.replicas == 0

    [gone] = bot.on("pull_request", own_repo.closed(3))
    [woken] = bot.run(*gone.follow_up)

    assert woken.status == Phase.READY
    web = apps.read_namespaced_deployment("web", own_repo.namespace(2))
    assert (web.spec.replicas, web.status.available_replicas) == (1, 1)


def test_a_prs_own_config_cannot_lift_the_cap_or_its_own_time_limit(
    bot: Bot, own_repo: OwnRepo, core: Any, checkout: Checkout
) -> None:
    own_repo.default_config("ttl: 2h\n", limit=1, checkout=checkout)
    bot.on("pull_request", own_repo.opened(2))
    # What a PR can write: its own .preview.yml, asking for room and for a preview that never goes.
    lax = "max_previews: 50\nwhen_full: evict-oldest-idle\nttl: 365d\nkeep_label: bug\n"
    checkout.write(".preview.yml", preview_config(prefix=own_repo.prefix, site=own_repo.site, more=lax))

    [third] = bot.on("pull_request", own_repo.opened(3))
    [pushed] = bot.on("pull_request", own_repo.pushed(2, "9" * 40))

    assert third.message == "queued, number 1 in line"
    assert pushed.status == Phase.READY
    notes = core.read_namespace(own_repo.namespace(2)).metadata.annotations
    assert notes[naming.TTL_ANNOTATION] == str(2 * 3600)
    assert notes[naming.KEEP_LABEL_ANNOTATION] == "preview-keep"
