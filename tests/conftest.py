"""Fixtures the scenario tests share: a preview's prefix and site, the clients, and the wired bot."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from previewbot import naming
from tests.harness import REPO, Bot, Checkout, OwnRepo, preview_site


@pytest.fixture
def prefix() -> str:
    """A namespace prefix of this test's own: real clusters are shared."""
    return "t" + secrets.token_hex(3)


@pytest.fixture
def site() -> Iterator[str]:
    """The preview's URL: a loopback site that answers 200."""
    with preview_site() as url:
        yield url


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path / "repo")


@pytest.fixture
def core(kube: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api_client())


@pytest.fixture
def apps(kube: Any) -> client.AppsV1Api:
    return client.AppsV1Api(kube.api_client())


@pytest.fixture
def bot(github: Any, kube: Any, checkout: Checkout, core: client.CoreV1Api, prefix: str) -> Iterator[Bot]:
    """previewbot wired to the emulated GitHub and the test's cluster; on a real one, its previews go after.

    Only this test's own (named with its prefix): tests running beside it on the shared cluster keep theirs.
    """
    yield Bot(github=github, kubeconfig=kube.kubeconfig, checkout=checkout)
    if not kube.emulated:
        for namespace in core.list_namespace(label_selector=naming.owned_selector(repo=REPO)).items:
            if namespace.metadata.name.startswith(f"{prefix}-"):
                core.delete_namespace(namespace.metadata.name)


@pytest.fixture
def own_repo(github: Any, kube: Any, core: client.CoreV1Api, prefix: str, site: str) -> Iterator[OwnRepo]:
    """A repo of this test's own, for scenarios that act on every preview of a repo (gc, sweeps, the cap)."""
    repo = OwnRepo(name=f"acme/{kube.unique('repo')}", prefix=prefix, site=site, github=github)
    yield repo
    if not kube.emulated:
        for namespace in core.list_namespace(label_selector=naming.owned_selector(repo=repo.name)).items:
            core.delete_namespace(namespace.metadata.name)
