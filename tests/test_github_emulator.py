"""The emulated GitHub API behaves as GitHub does where previewbot relies on it, seen through PyGithub."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests
from github import Auth, BadCredentialsException, Github, GithubException, UnknownObjectException
from github.Repository import Repository

from tests.emulators.github import COMMENT_BODY_LIMIT, GitHubEmulator, load_event
from tests.emulators.github_plugin import SEEDED_PR, SEEDED_REPO

HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def client(url: str, token: str) -> Github:
    return Github(
        auth=Auth.Token(token),
        base_url=url,
        retry=None,
        lazy=True,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


@pytest.fixture
def gh(github: GitHubEmulator) -> Iterator[Github]:
    with client(github.url, github.token) as pygithub:
        yield pygithub


@pytest.fixture
def repo(gh: Github) -> Repository:
    return gh.get_repo(SEEDED_REPO)


@pytest.fixture
def http(github: GitHubEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=github.url, headers={"Authorization": f"Bearer {github.token}"}) as raw:
        yield raw


# ---------------------------------------------------------------- authentication, unknown paths, headers


def test_a_request_without_the_token_is_refused(github: GitHubEmulator) -> None:
    with (
        client(github.url, "ghp_notTheRightOne") as stranger,
        pytest.raises(BadCredentialsException) as caught,
    ):
        stranger.get_repo(SEEDED_REPO).get_pull(SEEDED_PR).title  # noqa: B018
    assert caught.value.status == 401
    assert httpx.get(f"{github.url}/repos/{SEEDED_REPO}").status_code == 401


def test_bearer_and_token_schemes_are_both_accepted(github: GitHubEmulator) -> None:
    for scheme in ("Bearer", "token"):
        answer = httpx.get(f"{github.url}/rate_limit", headers={"Authorization": f"{scheme} {github.token}"})
        assert answer.status_code == 200


def test_an_unknown_path_is_not_found_like_github(http: httpx.Client) -> None:
    answer = http.get("/repos/Codertocat/Hello-World/wikis")
    assert answer.status_code == 404
    assert answer.json()["message"] == "Not Found"
    assert answer.json()["documentation_url"].startswith("https://docs.github.com/")


def test_every_answer_carries_rate_limit_headers(http: httpx.Client) -> None:
    first = http.get("/rate_limit")
    missing = http.get("/nowhere")
    for answer in (first, missing):
        assert answer.headers["x-ratelimit-limit"] == "5000"
        assert int(answer.headers["x-ratelimit-reset"]) > 0
    assert int(missing.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"]) - 1


def test_the_authenticated_user_is_refused_to_an_installation_token(gh: Github) -> None:
    with pytest.raises(GithubException) as refused:
        gh.get_user().login  # noqa: B018
    assert refused.value.status == 403
    assert refused.value.data["message"] == "Resource not accessible by integration"


def test_a_user_token_reads_its_user() -> None:
    with GitHubEmulator(login="octocat", user_type="User") as emulator, client(emulator.url, emulator.token) as gh:
        assert gh.get_user().login == "octocat"


@pytest.mark.parametrize(("login", "user_type"), [("previewbot[bot]", "Bot"), ("octocat", "User")])
def test_graphql_names_the_viewer_for_any_token(login: str, user_type: str) -> None:
    with GitHubEmulator(login=login, user_type=user_type) as emulator:
        for prefix in ("", "/api/v3"):  # Enterprise's GraphQL sits at /api/graphql
            with client(emulator.url + prefix, emulator.token) as gh:
                _, data = gh.requester.graphql_query("query { viewer { login } }", {})
                assert data["data"]["viewer"]["login"] == login


def test_the_rate_limit(gh: Github) -> None:
    core = gh.get_rate_limit().resources.core
    assert core.limit == 5000
    assert 0 < core.remaining < 5000


def test_requests_are_recorded_without_the_authorization_header(repo: Repository, github: GitHubEmulator) -> None:
    repo.get_issue(SEEDED_PR).create_comment("hello")
    recorded = github.requests[-1]
    assert (recorded.method, recorded.path, recorded.body) == (
        "POST",
        f"/repos/{SEEDED_REPO}/issues/{SEEDED_PR}/comments",
        {"body": "hello"},
    )
    assert all(name.lower() != "authorization" for name in recorded.headers)
    assert github.token not in repr(github.requests)


def test_the_api_is_also_served_under_the_enterprise_prefix(github: GitHubEmulator) -> None:
    with client(github.enterprise_url, github.token) as enterprise:
        repo = enterprise.get_repo(SEEDED_REPO)
        deployment = repo.create_deployment(ref=HEAD_SHA, environment="preview/pr-2", required_contexts=[])
        # The deployment's own URL carries the prefix, so PyGithub may follow it.
        assert deployment.create_status("success").state == "success"
        assert deployment.url.startswith(github.enterprise_url)


# ---------------------------------------------------------------- repos, pull requests, issues


def test_the_seeded_pull_request_is_the_published_example(repo: Repository) -> None:
    pull = repo.get_pull(SEEDED_PR)
    assert (pull.head.sha, pull.head.ref, pull.head.repo.full_name) == (HEAD_SHA, "changes", SEEDED_REPO)
    assert (pull.base.ref, pull.user.login, pull.state, pull.merged) == (
        "master",
        "Codertocat",
        "open",
        False,
    )
    assert [label.name for label in pull.labels] == ["bug"]
    assert pull.html_url == "https://github.com/Codertocat/Hello-World/pull/2"
    assert repo.full_name == SEEDED_REPO


def test_api_links_in_seeded_payloads_point_at_the_emulator(github: GitHubEmulator, repo: Repository) -> None:
    assert repo.get_pull(SEEDED_PR).head.repo.url == f"{github.url}/repos/{SEEDED_REPO}"


def test_a_pull_request_made_from_fields_can_come_from_a_fork(github: GitHubEmulator, repo: Repository) -> None:
    github.add_pull(repo=SEEDED_REPO, number=7, head_sha="f" * 40, head_repo="mallory/Hello-World", author="mallory")
    pull = repo.get_pull(7)
    assert (pull.head.sha, pull.head.repo.full_name, pull.head.repo.fork) == (
        "f" * 40,
        "mallory/Hello-World",
        True,
    )
    assert pull.user.login == "mallory"


def test_a_pull_request_can_be_closed_merged_and_pushed_to(github: GitHubEmulator, repo: Repository) -> None:
    github.update_pull(SEEDED_REPO, SEEDED_PR, head_sha="a" * 40, state="closed", merged=True, labels=[])
    pull = repo.get_pull(SEEDED_PR)
    assert (pull.head.sha, pull.state, pull.merged, pull.labels) == ("a" * 40, "closed", True, [])


def test_an_unknown_repo_or_pull_request_is_not_found(gh: Github, repo: Repository) -> None:
    with pytest.raises(UnknownObjectException):
        gh.get_repo("Codertocat/Nope").default_branch  # noqa: B018
    with pytest.raises(UnknownObjectException):
        repo.get_pull(99).title  # noqa: B018


def test_a_pull_requests_issue_says_it_is_a_pull_request(repo: Repository) -> None:
    issue = repo.get_issue(SEEDED_PR)
    assert issue.number == SEEDED_PR
    assert issue.pull_request is not None


def test_an_issue_from_an_event_takes_comments(github: GitHubEmulator, repo: Repository) -> None:
    github.add_issue(load_event("issue_comment.created.on_issue")["issue"])
    issue = repo.get_issue(1)
    assert issue.pull_request is None
    issue.create_comment("on an issue")
    assert [c.body for c in github.comments(SEEDED_REPO, 1)] == ["on an issue"]


# ---------------------------------------------------------------- comments and reactions


def test_comments_are_paginated_with_link_headers(github: GitHubEmulator, repo: Repository, http: httpx.Client) -> None:
    for index in range(130):
        github.add_comment(SEEDED_REPO, SEEDED_PR, f"comment {index}")
    first = http.get(f"/repos/{SEEDED_REPO}/issues/{SEEDED_PR}/comments", params={"per_page": 50})
    assert len(first.json()) == 50
    assert set(first.links) == {"next", "last"}
    assert first.links["last"]["url"].endswith("page=3")
    last = http.get(first.links["last"]["url"])
    assert len(last.json()) == 30
    assert set(last.links) == {"first", "prev"}
    bodies = [comment.body for comment in repo.get_issue(SEEDED_PR).get_comments()]
    assert bodies == [f"comment {index}" for index in range(130)]
    pages = [r for r in github.requests if r.path.endswith("/comments") and r.method == "GET"]
    assert len(pages) == 2 + 5  # two by hand, then PyGithub's 30 a page


def test_a_comment_is_made_by_the_tokens_user(github: GitHubEmulator, repo: Repository) -> None:
    comment = repo.get_issue(SEEDED_PR).create_comment("deploying")
    assert (comment.user.login, comment.user.type, comment.body) == ("previewbot[bot]", "Bot", "deploying")
    [stored] = github.comments(SEEDED_REPO, SEEDED_PR)
    assert (stored.id, stored.user, stored.user_type) == (comment.id, "previewbot[bot]", "Bot")


def test_a_comment_body_is_limited_to_65536_characters(github: GitHubEmulator, repo: Repository) -> None:
    issue = repo.get_issue(SEEDED_PR)
    issue.create_comment("x" * COMMENT_BODY_LIMIT)
    with pytest.raises(GithubException) as caught:
        issue.create_comment("x" * (COMMENT_BODY_LIMIT + 1))
    assert caught.value.status == 422
    assert caught.value.data["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    assert len(github.comments(SEEDED_REPO, SEEDED_PR)) == 1


def test_a_comment_can_be_read_edited_and_deleted(github: GitHubEmulator, gh: Github, repo: Repository) -> None:
    comment_id = github.add_comment(SEEDED_REPO, SEEDED_PR, "/preview redeploy", user="octocat")
    comment = repo.get_issue(SEEDED_PR).get_comment(comment_id)
    assert (comment.body, comment.user.login) == ("/preview redeploy", "octocat")
    comment.edit("edited")
    assert github.comments(SEEDED_REPO, SEEDED_PR)[0].body == "edited"
    with pytest.raises(GithubException) as caught:
        comment.edit("y" * (COMMENT_BODY_LIMIT + 1))
    assert caught.value.status == 422
    comment.delete()
    assert github.comments(SEEDED_REPO, SEEDED_PR) == []
    with pytest.raises(UnknownObjectException):
        comment.edit("gone")


def test_a_comment_is_not_found_through_another_repo(github: GitHubEmulator, gh: Github) -> None:
    github.add_repo("octocat/other")
    github.add_pull(repo="octocat/other", number=1)
    comment_id = github.add_comment(SEEDED_REPO, SEEDED_PR, "mine")
    with pytest.raises(UnknownObjectException):
        gh.get_repo("octocat/other").get_issue(1).get_comment(comment_id).body  # noqa: B018


def test_reacting_twice_the_same_way_answers_200_and_adds_nothing(
    github: GitHubEmulator, http: httpx.Client, repo: Repository
) -> None:
    comment_id = github.add_comment(SEEDED_REPO, SEEDED_PR, "/preview redeploy")
    path = f"/repos/{SEEDED_REPO}/issues/comments/{comment_id}/reactions"
    assert http.post(path, json={"content": "eyes"}).status_code == 201
    assert http.post(path, json={"content": "eyes"}).status_code == 200
    assert http.post(path, json={"content": "rocket"}).status_code == 201
    assert http.post(path, json={"content": "tada"}).status_code == 422
    listed = repo.get_issue(SEEDED_PR).get_comment(comment_id).get_reactions()
    assert [reaction.content for reaction in listed] == ["eyes", "rocket"]
    assert [r.content for r in github.reactions(SEEDED_REPO, comment_id)] == ["eyes", "rocket"]


# ---------------------------------------------------------------- permissions


def test_permission_has_github_legacy_level_and_role_name(github: GitHubEmulator, repo: Repository) -> None:
    github.set_permission(SEEDED_REPO, "maintainer", "maintain")
    github.set_permission(SEEDED_REPO, "triager", "triage")
    assert (
        repo.get_collaborator_permission("Codertocat"),
        repo.get_collaborator_role_name("Codertocat"),
    ) == (
        "admin",
        "admin",
    )
    assert repo.get_collaborator_permission("maintainer") == "write"
    assert repo.get_collaborator_role_name("maintainer") == "maintain"
    assert repo.get_collaborator_permission("triager") == "read"
    with pytest.raises(UnknownObjectException):
        repo.get_collaborator_permission("nobody")


# ---------------------------------------------------------------- deployments


def deploy(repo: Repository, environment: str = "preview/pr-2", sha: str = HEAD_SHA) -> int:
    deployment = repo.create_deployment(
        ref=sha,
        environment=environment,
        transient_environment=True,
        production_environment=False,
        required_contexts=[],
    )
    deployment_id: int = deployment.id
    return deployment_id


def test_a_deployment_records_what_was_asked(github: GitHubEmulator, repo: Repository) -> None:
    created = repo.create_deployment(
        ref=HEAD_SHA,
        environment="preview/pr-2",
        description="PR #2",
        transient_environment=True,
        production_environment=False,
        auto_merge=False,
        required_contexts=[],
        payload={"pr": 2},
    )
    assert (created.sha, created.environment, created.payload) == (HEAD_SHA, "preview/pr-2", {"pr": 2})
    assert (created.transient_environment, created.production_environment) == (True, False)
    [stored] = github.deployments(SEEDED_REPO)
    assert (stored.id, stored.auto_merge, stored.required_contexts, stored.statuses) == (
        created.id,
        False,
        [],
        [],
    )


def test_deployments_are_listed_newest_first_and_filtered(repo: Repository) -> None:
    first = deploy(repo)
    other = deploy(repo, environment="preview/pr-3", sha="b" * 40)
    second = deploy(repo)
    assert [d.id for d in repo.get_deployments(environment="preview/pr-2")] == [second, first]
    assert [d.id for d in repo.get_deployments(sha="b" * 40)] == [other]
    assert repo.get_deployment(other).environment == "preview/pr-3"
    with pytest.raises(UnknownObjectException):
        repo.get_deployment(1).environment  # noqa: B018


def test_a_deployment_waits_for_the_commits_checks_unless_told_not_to(repo: Repository) -> None:
    repo.get_commit(HEAD_SHA).create_status("failure", context="ci")
    with pytest.raises(GithubException) as caught:
        repo.create_deployment(ref=HEAD_SHA, environment="preview/pr-2")
    assert caught.value.status == 409
    assert deploy(repo) > 0


def test_deployment_statuses_keep_their_urls(github: GitHubEmulator, repo: Repository) -> None:
    deployment = repo.get_deployment(deploy(repo))
    deployment.create_status("in_progress", description="deploying")
    status = deployment.create_status(
        "success",
        environment_url="https://pr-2.preview.example",
        target_url="https://ci/log",
        description="ready",
    )
    assert (status.environment_url, status.target_url, status.log_url) == (
        "https://pr-2.preview.example",
        "https://ci/log",
        "https://ci/log",
    )
    assert [s.state for s in deployment.get_statuses()] == ["success", "in_progress"]
    [stored] = github.deployments(SEEDED_REPO)
    assert [s.state for s in stored.statuses] == ["in_progress", "success"]
    assert stored.statuses[-1].environment_url == "https://pr-2.preview.example"


def test_a_deployment_status_is_checked(repo: Repository) -> None:
    deployment = repo.get_deployment(deploy(repo))
    for state, description in (("done", "ok"), ("success", "d" * 141)):
        with pytest.raises(GithubException) as caught:
            deployment.create_status(state, description=description)
        assert caught.value.status == 422


def test_a_new_success_makes_earlier_deployments_of_the_environment_inactive(
    github: GitHubEmulator, repo: Repository
) -> None:
    earlier = repo.get_deployment(deploy(repo))
    elsewhere = repo.get_deployment(deploy(repo, environment="preview/pr-3"))
    for deployment in (earlier, elsewhere):
        deployment.create_status("success")
    repo.get_deployment(deploy(repo)).create_status("success")
    states = {d.id: d.state for d in github.deployments(SEEDED_REPO)}
    assert states[earlier.id] == "inactive"
    assert states[elsewhere.id] == "success"


def test_auto_inactive_false_keeps_earlier_deployments_active(github: GitHubEmulator, repo: Repository) -> None:
    earlier = repo.get_deployment(deploy(repo))
    earlier.create_status("success")
    repo.get_deployment(deploy(repo)).create_status("success", auto_inactive=False)
    assert {d.id: d.state for d in github.deployments(SEEDED_REPO)}[earlier.id] == "success"


def test_an_active_deployment_cannot_be_deleted(github: GitHubEmulator, http: httpx.Client, repo: Repository) -> None:
    first = repo.get_deployment(deploy(repo))
    first.create_status("success")
    deploy(repo)
    path = f"/repos/{SEEDED_REPO}/deployments/{first.id}"
    assert http.delete(path).status_code == 422
    first.create_status("inactive")
    assert http.delete(path).status_code == 204
    assert first.id not in [d.id for d in github.deployments(SEEDED_REPO)]


# ---------------------------------------------------------------- commit statuses


def test_commit_statuses_are_listed_newest_first_and_combined(github: GitHubEmulator, repo: Repository) -> None:
    commit = repo.get_commit(HEAD_SHA)
    commit.create_status("pending", context="previewbot", description="deploying", target_url="https://ci/1")
    assert commit.get_combined_status().state == "pending"
    commit.create_status("success", context="previewbot", description="ready")
    commit.create_status("success", context="ci")
    assert [s.state for s in commit.get_statuses()] == ["success", "success", "pending"]
    combined = commit.get_combined_status()
    assert (combined.state, combined.total_count) == ("success", 2)
    commit.create_status("error", context="ci")
    assert commit.get_combined_status().state == "failure"
    assert [s.context for s in github.statuses(SEEDED_REPO, HEAD_SHA)] == [
        "ci",
        "ci",
        "previewbot",
        "previewbot",
    ]


def test_a_commit_status_is_checked(repo: Repository) -> None:
    commit = repo.get_commit(HEAD_SHA)
    commit.create_status("success", description="d" * 140)
    for state, description in (("done", "ok"), ("success", "d" * 141)):
        with pytest.raises(GithubException) as caught:
            commit.create_status(state, description=description)
        assert caught.value.status == 422


# ---------------------------------------------------------------- failure injection


def test_a_failure_is_injected_the_given_number_of_times(github: GitHubEmulator, repo: Repository) -> None:
    github.fail_next("GET", r"/pulls/2$", 500, times=2)
    for _ in range(2):
        with pytest.raises(GithubException) as caught:
            repo.get_pull(SEEDED_PR).title  # noqa: B018
        assert caught.value.status == 500
    assert repo.get_pull(SEEDED_PR).number == SEEDED_PR


def test_a_failure_is_injected_only_where_it_matches(github: GitHubEmulator, repo: Repository) -> None:
    github.fail_with_bad_gateway("POST", r"/comments$")
    assert repo.get_pull(SEEDED_PR).number == SEEDED_PR
    with pytest.raises(GithubException) as caught:
        repo.get_issue(SEEDED_PR).create_comment("hello")
    assert caught.value.status == 502


def test_rate_limit_failures_carry_githubs_headers(github: GitHubEmulator, http: httpx.Client) -> None:
    github.fail_with_secondary_rate_limit("GET", "/rate_limit", retry_after=30)
    github.fail_with_primary_rate_limit("GET", "/rate_limit", reset_at=1_700_000_042)
    github.fail_with_too_many_requests("GET", "/rate_limit", retry_after=7)
    secondary, primary, too_many = (http.get("/rate_limit") for _ in range(3))
    assert (secondary.status_code, secondary.headers["retry-after"]) == (403, "30")
    assert "secondary rate limit" in secondary.json()["message"]
    assert primary.status_code == 403
    assert (primary.headers["x-ratelimit-remaining"], primary.headers["x-ratelimit-reset"]) == (
        "0",
        "1700000042",
    )
    assert primary.json()["message"].startswith("API rate limit exceeded")
    assert (too_many.status_code, too_many.headers["retry-after"]) == (429, "7")
    assert http.get("/rate_limit").status_code == 200


def test_a_dropped_connection_is_a_connection_error(github: GitHubEmulator, repo: Repository) -> None:
    github.drop_connection("GET", r"/pulls/2$")
    with pytest.raises(requests.ConnectionError):
        repo.get_pull(SEEDED_PR).title  # noqa: B018
    assert repo.get_pull(SEEDED_PR).number == SEEDED_PR


def test_a_create_can_be_carried_out_and_its_answer_lost(github: GitHubEmulator, repo: Repository) -> None:
    github.lose_the_answer("POST", r"/comments$")
    github.lose_the_answer("POST", r"/deployments$", 0)

    with pytest.raises(GithubException) as caught:
        repo.get_issue(SEEDED_PR).create_comment("made all the same")
    with pytest.raises(requests.ConnectionError):
        repo.create_deployment(ref="changes", environment="preview/pr-2", required_contexts=[])

    assert caught.value.status == 502
    assert [c.body for c in github.comments(SEEDED_REPO, SEEDED_PR)] == ["made all the same"]
    assert [d.environment for d in github.deployments(SEEDED_REPO)] == ["preview/pr-2"]
