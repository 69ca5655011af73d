"""pytest fixtures of the emulated Kubernetes API.

`kube` gives each test a cluster: the emulator with its test-only kubelet, or the real cluster
named by PREVIEWBOT_TEST_KUBECONFIG (shared, so names come from `unique`). `emulated_kube` is
the same for tests that need the emulator's state or knobs, skipped on a real cluster.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest
import yaml

from tests.emulators.kube import KubeApiServer
from tests.emulators.kubelet import Kubelet

REAL_CLUSTER_ENV = "PREVIEWBOT_TEST_KUBECONFIG"


@dataclass
class KubeEnv:
    kubeconfig: Path
    emulated: bool
    server: KubeApiServer | None
    kubelet: Kubelet | None
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    _clients: list[kubernetes.client.ApiClient] = field(default_factory=list, repr=False)

    def api_client(self) -> kubernetes.client.ApiClient:
        """A fresh client for this cluster, closed when the test ends."""
        client = kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))
        self._clients.append(client)
        return client

    def unique(self, base: str) -> str:
        """A DNS-1123 name unique to this test run: real clusters are shared between runs."""
        suffix = f"-{self.run_id}"
        return base[: 63 - len(suffix)].rstrip("-") + suffix

    def close(self) -> None:
        for client in self._clients:
            client.close()


def write_kubeconfig(path: Path, server_url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulated", "cluster": {"server": server_url}}],
        "users": [{"name": "tester", "user": {"token": "emulated-token"}}],
        "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "tester"}}],
        "current-context": "emulated",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeEnv]:
    """The cluster of one test: emulated unless PREVIEWBOT_TEST_KUBECONFIG names a real one."""
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        env = KubeEnv(kubeconfig=Path(real), emulated=False, server=None, kubelet=None)
        try:
            yield env
        finally:
            env.close()
        return
    server = KubeApiServer().start()
    kubelet = Kubelet(server).start()
    env = KubeEnv(
        kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", server.url),
        emulated=True,
        server=server,
        kubelet=kubelet,
    )
    try:
        yield env
    finally:
        env.close()
        kubelet.stop()
        server.stop()
    if server.internal_errors:
        pytest.fail("the Kubernetes emulator failed:\n" + "\n".join(server.internal_errors))


@pytest.fixture
def emulated_kube(kube: KubeEnv) -> KubeEnv:
    """`kube`, for tests that can only run on the emulator."""
    if not kube.emulated:
        pytest.skip("needs the Kubernetes emulator, not a real cluster")
    return kube
