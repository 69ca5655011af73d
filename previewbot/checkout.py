"""What a local checkout says of itself: its branch, its commit and its GitHub repo.

Read from the files under .git, never by running git: a checkout's own config can make git run
programs (core.fsmonitor, hooks, filters), and previewbot runs nothing a checkout chose.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from previewbot.errors import UserError

_SHA = re.compile(r"^[0-9a-f]{40}$")
_REMOTE_URL = re.compile(r"^(?:[a-z+]+://(?:[^@/]+@)?[^/]+/|[^@:/]+@[^:]+:)(?P<path>.+?)(?:\.git)?/?$")
_BRANCH_REF = "refs/heads/"


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """Where a checkout's HEAD points: a commit, and the branch when HEAD is on one."""

    sha: str | None  # None on a branch that has no commit yet
    branch: str  # "" when HEAD is detached


def read_head(root: Path) -> Head:
    """The HEAD of the checkout root is in; UserError when it is in none."""
    git_dir = _git_dir(root)
    head = _read(git_dir / "HEAD").strip()
    if _SHA.match(head):
        return Head(sha=head, branch="")
    if not head.startswith("ref: "):
        raise UserError(f"{git_dir / 'HEAD'} names neither a commit nor a branch")
    ref = head.removeprefix("ref: ").strip()
    return Head(sha=_resolve(git_dir, ref), branch=ref.removeprefix(_BRANCH_REF))


def read_repo(root: Path) -> str | None:
    """ "owner/name" from the URL of the checkout's `origin` remote; None when it has none."""
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read_string(_read(_common_dir(_git_dir(root)) / "config"))
    except (configparser.Error, UserError):
        return None
    url = config.get('remote "origin"', "url", fallback="").strip()
    match = _REMOTE_URL.match(url)
    if match is None:
        return None
    parts = match["path"].strip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def _git_dir(root: Path) -> Path:
    """The .git folder of the checkout root is in (root may be a folder inside it).

    A worktree's or a submodule's .git is a file that points to its folder.
    """
    for folder in (root, *root.resolve().parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            pointer = _read(dot_git).strip()
            if pointer.startswith("gitdir: "):
                target = Path(pointer.removeprefix("gitdir: ").strip())
                return target if target.is_absolute() else (folder / target).resolve()
    raise UserError(f"{root} is not in a git checkout: pass --sha and --name to say what to deploy")


def _common_dir(git_dir: Path) -> Path:
    """Where refs and config shared by all worktrees live."""
    pointer = git_dir / "commondir"
    if not pointer.is_file():
        return git_dir
    target = Path(_read(pointer).strip())
    return target if target.is_absolute() else (git_dir / target).resolve()


def _resolve(git_dir: Path, ref: str) -> str | None:
    for folder in dict.fromkeys((git_dir, _common_dir(git_dir))):
        loose = folder / ref
        if loose.is_file():
            sha = _read(loose).strip()
            return sha if _SHA.match(sha) else None
    packed = _common_dir(git_dir) / "packed-refs"
    if packed.is_file():
        for line in _read(packed).splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref and _SHA.match(sha):
                return sha
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or 'unreadable'}") from error
