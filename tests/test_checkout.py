"""What previewbot reads of a local checkout from its .git files, with git only making the checkouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from previewbot.checkout import Head, read_head, read_repo
from previewbot.errors import UserError
from tests.harness import git


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = tmp_path / "clone"
    folder.mkdir()
    git(folder, "init", "--quiet", "--initial-branch", "feature/Login")
    git(folder, "commit", "--quiet", "--allow-empty", "-m", "first")
    return folder


def test_the_branch_and_its_commit(clone: Path) -> None:
    assert read_head(clone) == Head(sha=git(clone, "rev-parse", "HEAD"), branch="feature/Login")


def test_a_folder_inside_the_checkout_is_in_it(clone: Path) -> None:
    (clone / "deploy" / "base").mkdir(parents=True)

    assert read_head(clone / "deploy" / "base").branch == "feature/Login"


def test_a_detached_head_has_no_branch(clone: Path) -> None:
    sha = git(clone, "rev-parse", "HEAD")
    git(clone, "checkout", "--quiet", "--detach")

    assert read_head(clone) == Head(sha=sha, branch="")


def test_a_packed_ref_is_found(clone: Path) -> None:
    git(clone, "pack-refs", "--all")

    assert read_head(clone).sha == git(clone, "rev-parse", "HEAD")
    assert not (clone / ".git" / "refs" / "heads" / "feature" / "Login").exists()


def test_a_worktree_reads_its_own_head_and_the_shared_config(clone: Path, tmp_path: Path) -> None:
    git(clone, "remote", "add", "origin", "https://github.com/acme/shop.git")
    git(clone, "worktree", "add", "--quiet", "-b", "other", str(tmp_path / "worktree"))

    assert read_head(tmp_path / "worktree").branch == "other"
    assert read_repo(tmp_path / "worktree") == "acme/shop"


def test_a_branch_with_no_commit_yet_has_no_sha(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "--initial-branch", "main")

    assert read_head(tmp_path) == Head(sha=None, branch="main")


def test_a_folder_in_no_checkout_is_refused_with_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--sha and --name"):
        read_head(tmp_path)


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop", "acme/shop"),
        ("ssh://git@github.example.com:2222/acme/shop.git", "acme/shop"),
        ("https://token@github.com/acme/shop/", "acme/shop"),
        ("/srv/git/shop.git", None),
    ],
)
def test_the_repo_comes_from_the_origin_remote(clone: Path, url: str, repo: str | None) -> None:
    git(clone, "remote", "add", "origin", url)

    assert read_repo(clone) == repo


def test_a_checkout_without_origin_names_no_repo(clone: Path) -> None:
    assert read_repo(clone) is None


def test_nothing_the_checkout_configures_is_run(clone: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    git(clone, "config", "core.fsmonitor", f"touch {marker}")

    read_head(clone)
    read_repo(clone)

    assert not marker.exists()
