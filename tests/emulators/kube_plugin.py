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
from typing import Any

import kubernetes
import kubernetes.dynamic
import pytest
import yaml

from tests.emulators.kube import ADMIN_TOKEN, KubeApiServer
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


@dataclass
class RbacUser:
    """A ServiceAccount bound to RBAC manifests (made by `previewbot rbac`), and a kubeconfig of its token."""

    name: str  # NAME of the manifests, unique to the test run
    username: str
    kubeconfig: Path


def bound_user(kube: KubeEnv, path: Path, documents: list[dict[str, Any]], *, name: str, account: str) -> RbacUser:
    """Apply documents as the cluster's admin and give their subject, ServiceAccount `account`, a token.

    On the emulator the token is one the emulated API knows; on a real cluster it is the
    TokenRequest API's, for a ServiceAccount made here. `cleanup_rbac` takes it all away.
    """
    namespace, _, account_name = account.partition("/")
    username = f"system:serviceaccount:{namespace}:{account_name}"
    admin = kube.api_client()
    core = kubernetes.client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": account_name}})
    resources = kubernetes.dynamic.DynamicClient(admin).resources
    for document in documents:
        resource = resources.get(api_version=document["apiVersion"], kind=document["kind"])
        resource.create(body=document, namespace=document["metadata"].get("namespace"))
    config = yaml.safe_load(kube.kubeconfig.read_text())
    if kube.emulated:
        assert kube.server is not None
        token = secrets.token_hex(16)
        kube.server.users[token] = username
    else:
        request = {"spec": {"expirationSeconds": 3600}}
        token = core.create_namespaced_service_account_token(account_name, namespace, request).status.token
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    bound = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account_name, "user": {"token": token}}],
        "contexts": [{"name": "bound", "context": {"cluster": cluster["name"], "user": account_name}}],
        "current-context": "bound",
    }
    path.write_text(yaml.safe_dump(bound))
    return RbacUser(name=name, username=username, kubeconfig=path)


def cleanup_rbac(kube: KubeEnv, documents: list[dict[str, Any]], *, account_namespace: str) -> None:
    """Delete what `bound_user` made on a real cluster (the emulator goes with its test)."""
    if kube.emulated:
        return
    admin = kube.api_client()
    resources = kubernetes.dynamic.DynamicClient(admin).resources
    for document in documents:
        resource = resources.get(api_version=document["apiVersion"], kind=document["kind"])
        try:
            resource.delete(name=document["metadata"]["name"], namespace=document["metadata"].get("namespace"))
        except kubernetes.dynamic.exceptions.NotFoundError:
            continue
    kubernetes.client.CoreV1Api(admin).delete_namespace(account_namespace)


def write_kubeconfig(path: Path, server_url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulated", "cluster": {"server": server_url}}],
        "users": [{"name": "tester", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "tester"}}],
        "current-context": "emulated",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of a cluster `cluster`: `pytest -m cluster` runs them again on a real one."""
    for item in items:
        if "kube" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


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
