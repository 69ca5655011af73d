"""pytest set-up shared by tests/ and benchmarks/: the emulated GitHub and Kubernetes APIs as plugins."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.emulators.kube_plugin", "tests.emulators.github_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_stay_in_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The kubernetes client caches discovery in a temp file per API address, and every emulator has
    # its own port: kept under pytest's temp folder, those files go when pytest prunes old sessions.
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tmp"))
    yield
    tempfile.tempdir = before
