"""pytest fixtures of the emulated GitHub API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulators.github import GitHubEmulator, load_event

SEEDED_REPO = "Codertocat/Hello-World"
SEEDED_PR = 2


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    """The emulated GitHub API, running, with Codertocat/Hello-World and its PR #2 as GitHub's
    pull_request.opened example describes them (the owner Codertocat has admin permission)."""
    event = load_event("pull_request.opened")
    with GitHubEmulator() as emulator:
        emulator.add_repo(SEEDED_REPO, payload=event["repository"])
        emulator.add_pull(event["pull_request"])
        yield emulator
