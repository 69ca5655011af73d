"""Who may do what with a pull request's preview, decided only from what the PR cannot write.

A PR can change its own .preview.yml, any commenter can write any text, and a pod's log says
whatever the PR's code prints. So the settings that decide trust come from the config on the
repo's default branch, permissions from GitHub, and fork approvals from the preview namespace's
annotations, which only previewbot writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from previewbot import naming
from previewbot.config import Commands, Forks, PreviewConfig, load_config, trusted_default
from previewbot.core.ports import GitHub
from previewbot.errors import UserError
from previewbot.model import NamespaceInfo, PullRequest

log = logging.getLogger("previewbot")

PERMISSION_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


@dataclass(frozen=True, kw_only=True)
class Trusted:
    """The default branch's config: None when it has none, or none that is valid (then `problem` says why)."""

    config: PreviewConfig | None = None
    problem: str | None = None

    @property
    def commands(self) -> Commands:
        return self.config.commands if self.config else Commands()

    @property
    def forks(self) -> Forks:
        return self.config.forks if self.config else Forks()

    @property
    def prefix(self) -> str:
        return self.config.namespace.prefix if self.config else str(trusted_default("namespace").prefix)

    @property
    def status_context(self) -> str:
        return self.config.status_context if self.config else str(trusted_default("status_context"))


def read_trusted(github: GitHub, pr: PullRequest, *, config_path: str) -> Trusted:
    """The config on the repo's default branch, whichever branch the PR targets.

    A PR based on an old branch whose config let forks in, or granted a Secret, gets nothing from it.
    """
    where = f"{config_path} on {pr.default_branch}"
    text = github.file_text(pr.repo, config_path, ref=pr.default_branch)
    if text is None:
        return Trusted()
    try:
        return Trusted(config=load_config(text, path=where))
    except UserError as error:
        problem = f"{where} is not valid, so the safe defaults hold for who may command, forks and guardrails:\n{error}"
        log.warning("%s", problem)
        return Trusted(problem=problem)


def needed_permission(verb: str | None, commands: Commands) -> str:
    if verb == "approve":
        # Approving runs a stranger's code on the cluster: never below write, whatever the config.
        return max(commands.permission, "write", key=PERMISSION_RANK.__getitem__)
    return commands.permission


def approved_sha(namespace: NamespaceInfo | None, pr: PullRequest) -> str | None:
    """The commit a maintainer approved for this PR's preview, as previewbot recorded it on the namespace."""
    if namespace is None or not naming.is_owned(namespace, repo=pr.repo, number=pr.number):
        return None
    return namespace.annotations.get(naming.APPROVED_SHA_ANNOTATION) or None
