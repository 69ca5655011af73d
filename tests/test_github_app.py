"""The GitHub App adapter through PyGithub against the emulated GitHub: JWT, tokens, the server's reads."""

from __future__ import annotations

import time

import pytest

from previewbot.adapters.github_app import GitHubApp
from previewbot.errors import Forbidden
from previewbot.redact import redactor
from tests.app_keys import APP_ID, INSTALLATION_ID, key_pair
from tests.emulators.github import GitHubEmulator
from tests.emulators.github_plugin import SEEDED_PR, SEEDED_REPO

OTHER_REPO = "acme/shop"


@pytest.fixture
def app(github: GitHubEmulator) -> GitHubApp:
    private, public = key_pair()
    github.install_app(
        app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [SEEDED_REPO], 7: [OTHER_REPO]}
    )
    return GitHubApp(app_id=APP_ID, private_key=private, api_url=github.url, seconds_between_writes=None)


def test_the_app_knows_its_bot_login(app: GitHubApp) -> None:
    assert app.bot_login() == "previewbot[bot]"


def test_an_installation_token_is_reused_until_it_nears_expiry(github: GitHubEmulator) -> None:
    private, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [SEEDED_REPO]})
    now = [time.time()]
    app = GitHubApp(app_id=APP_ID, private_key=private, api_url=github.url, clock=lambda: now[0])
    first = app.token(SEEDED_REPO)
    assert app.token(SEEDED_REPO) == first
    assert first not in redactor.redact(f"a log line with {first} in it"), "tokens never show in output"
    assert app.github(SEEDED_REPO).pull_request(SEEDED_REPO, SEEDED_PR).number == SEEDED_PR
    now[0] += 3600 - 1000  # less than the half hour of margin left
    second = app.token(SEEDED_REPO)
    assert second != first
    assert set(github.installation_tokens()) == {first, second}
    exchanges = [r for r in github.requests if r.path == f"/app/installations/{INSTALLATION_ID}/access_tokens"]
    assert len(exchanges) == 2


def test_a_jwt_signed_by_another_key_is_refused(github: GitHubEmulator) -> None:
    _, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [SEEDED_REPO]})
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(Forbidden, match="401"):
        GitHubApp(app_id=APP_ID, private_key=stranger, api_url=github.url).token(SEEDED_REPO)


def test_a_jwt_of_another_app_is_refused(github: GitHubEmulator) -> None:
    private, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [SEEDED_REPO]})
    with pytest.raises(Forbidden):
        GitHubApp(app_id=APP_ID + 1, private_key=private, api_url=github.url).bot_login()


def test_the_repos_of_every_installation_are_listed(app: GitHubApp) -> None:
    assert sorted(app.repositories()) == sorted([SEEDED_REPO, OTHER_REPO])
    assert app.rate_remaining is not None


def test_builds_give_the_newest_conclusion_of_each_name(app: GitHubApp, github: GitHubEmulator) -> None:
    sha = "a" * 40
    github.add_check_run(SEEDED_REPO, sha, name="image", status="completed", conclusion="failure")
    github.add_check_run(SEEDED_REPO, sha, name="image", status="completed", conclusion="success")
    github.add_check_run(SEEDED_REPO, sha, name="lint", status="in_progress")
    github.add_workflow_run(SEEDED_REPO, sha, name="build", status="completed", conclusion="success")
    github.add_workflow_run(SEEDED_REPO, "b" * 40, name="build", status="completed", conclusion="failure")
    assert app.builds(SEEDED_REPO, sha) == {"image": "success", "lint": None, "build": "success"}
