"""A PR's files at one commit, read through GitHub's contents API: a deploy's workspace where there is no checkout.

`.preview.yml` and the files and folders it names (and the bases a Kustomize overlay builds on),
written into a folder of the caller's. The tree is exactly the commit it was read at, so the core
can check it as it checks a checkout. It is data only: nothing in it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from previewbot.config import PreviewConfig, load_config
from previewbot.core.ports import GitHub
from previewbot.errors import NotFound, UserError
from previewbot.sources import kustomize

log = logging.getLogger("previewbot")


def fetch_tree(github: GitHub, repo: str, sha: str, *, into: Path, config_path: str) -> None:
    """`config_path` at sha and what it names, under into; what is missing is left for the core to report."""
    try:
        github.download(repo, config_path, ref=sha, into=into)
    except NotFound:
        return
    config = read_config(into, config_path)
    if config is None:
        return
    based_on: set[str] = set()
    pending = _named_paths(config)
    while pending:
        path = pending.pop(0)
        try:
            github.download(repo, path, ref=sha, into=into)
            if (path == config.kustomize or path in based_on) and (into / path).is_dir():
                # An overlay builds on bases elsewhere in the repo: fetch those too, and what they build on.
                found = kustomize.missing_references(path, root=into)
                based_on.update(found)
                pending += found
        except (NotFound, UserError) as error:
            log.info("%s of %s at %s not fetched: %s", path, repo, sha[:7], error)


def read_config(workspace: Path, config_path: str) -> PreviewConfig | None:
    """The config in workspace; None when there is none or it is not valid (the core says what is wrong)."""
    try:
        return load_config((workspace / config_path).read_text(), path=config_path)
    except (OSError, UserError):
        return None


def _named_paths(config: PreviewConfig) -> list[str]:
    """The files and folders in the repo that a deploy of config reads."""
    paths = list(config.manifests or [])
    if config.kustomize:
        paths.append(config.kustomize)
    if config.helm is not None:
        if not config.helm.remote:
            paths.append(config.helm.chart)
        paths.extend(config.helm.values_files)
    return paths
