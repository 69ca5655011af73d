"""The per-PR Lease, through the kubernetes client, on the emulated API server or a real cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from previewbot.adapters.kubernetes import KubernetesCluster, connect
from previewbot.core.leases import LeaseUnavailable, PrLease
from previewbot.model import PrRef

NAMESPACE = "default"


@pytest.fixture
def cluster(kube: Any) -> KubernetesCluster:
    return connect(kubeconfig=str(kube.kubeconfig))


@pytest.fixture
def lease(kube: Any) -> Any:
    name = kube.unique("lease")
    yield name
    coordination = client.CoordinationV1Api(kube.api_client())
    if any(item.metadata.name == name for item in coordination.list_namespaced_lease(NAMESPACE).items):
        coordination.delete_namespaced_lease(name, NAMESPACE)


def test_a_lease_is_held_by_one_holder_until_it_is_released(cluster: KubernetesCluster, lease: str) -> None:
    assert cluster.take_lease(NAMESPACE, lease, holder="a", seconds=30)
    assert cluster.take_lease(NAMESPACE, lease, holder="a", seconds=30), "its holder renews it"
    assert not cluster.take_lease(NAMESPACE, lease, holder="b", seconds=30)
    cluster.release_lease(NAMESPACE, lease, holder="b")  # not b's to release
    assert not cluster.take_lease(NAMESPACE, lease, holder="b", seconds=30)
    cluster.release_lease(NAMESPACE, lease, holder="a")
    assert cluster.take_lease(NAMESPACE, lease, holder="b", seconds=30)


def test_a_lease_whose_holder_stopped_renewing_is_taken_over(cluster: KubernetesCluster, lease: str, kube: Any) -> None:
    assert cluster.take_lease(NAMESPACE, lease, holder="dead", seconds=1)
    time.sleep(1.5)
    assert cluster.take_lease(NAMESPACE, lease, holder="alive", seconds=30)
    spec = client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(lease, NAMESPACE).spec
    assert spec.holder_identity == "alive"
    assert spec.lease_transitions == 1


def test_a_write_from_a_stale_read_is_refused(lease: str, kube: Any) -> None:
    """What makes two takers safe: the API answers 409 to a replace that names an old resourceVersion."""
    coordination = client.CoordinationV1Api(kube.api_client())
    body = client.V1Lease(metadata=client.V1ObjectMeta(name=lease), spec=client.V1LeaseSpec(holder_identity="a"))
    created = coordination.create_namespaced_lease(NAMESPACE, body)
    created.spec.holder_identity = "b"
    coordination.replace_namespaced_lease(lease, NAMESPACE, created)
    created.spec.holder_identity = "c"
    with pytest.raises(client.ApiException) as refused:
        coordination.replace_namespaced_lease(lease, NAMESPACE, created)
    assert refused.value.status == 409
    with pytest.raises(client.ApiException) as exists:
        coordination.create_namespaced_lease(NAMESPACE, body)
    assert exists.value.status == 409


def test_runs_on_one_pr_take_turns(kube: Any) -> None:
    ref = PrRef(repo=f"acme/{kube.unique('turns')}", number=7)
    inside: list[str] = []
    overlaps: list[str] = []

    def run(holder: str) -> None:
        with PrLease(connect(kubeconfig=str(kube.kubeconfig)), namespace=NAMESPACE, ref=ref, holder=holder, seconds=3):
            if inside:
                overlaps.append(holder)
            inside.append(holder)
            time.sleep(0.5)
            inside.remove(holder)

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not overlaps
    client.CoordinationV1Api(kube.api_client()).delete_namespaced_lease(
        PrLease(connect(kubeconfig=str(kube.kubeconfig)), namespace=NAMESPACE, ref=ref, holder="-").name, NAMESPACE
    )


def test_waiting_for_a_lease_can_be_given_up(cluster: KubernetesCluster, kube: Any) -> None:
    ref = PrRef(repo=f"acme/{kube.unique('give-up')}", number=1)
    give_up = threading.Event()
    holding = PrLease(cluster, namespace=NAMESPACE, ref=ref, holder="first", seconds=30)
    with holding:
        give_up.set()
        with (
            pytest.raises(LeaseUnavailable),
            PrLease(cluster, namespace=NAMESPACE, ref=ref, holder="second", seconds=30, give_up=give_up),
        ):
            pass
    client.CoordinationV1Api(kube.api_client()).delete_namespaced_lease(holding.name, NAMESPACE)


def test_a_lease_taken_over_since_its_holder_last_wrote_it_is_left_to_the_new_holder(
    cluster: KubernetesCluster, lease: str, kube: Any
) -> None:
    """The release writes from the holder's own last version: a newer one (another's) refuses it."""
    assert cluster.take_lease(NAMESPACE, lease, holder="dead", seconds=1)
    time.sleep(1.5)
    assert connect(kubeconfig=str(kube.kubeconfig)).take_lease(NAMESPACE, lease, holder="alive", seconds=30)
    cluster.release_lease(NAMESPACE, lease, holder="dead")
    spec = client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(lease, NAMESPACE).spec
    assert spec.holder_identity == "alive"


def test_a_lease_another_made_in_a_namespace_this_client_made_is_read_before_it_is_taken(kube: Any) -> None:
    """A namespace's maker creates the Lease without reading it first: when that is refused, it reads."""
    namespace = kube.unique("leases")
    maker = connect(kubeconfig=str(kube.kubeconfig))
    maker.create_namespace(namespace, labels={}, annotations={})
    other = connect(kubeconfig=str(kube.kubeconfig))
    try:
        assert other.take_lease(namespace, "pr", holder="other", seconds=30)
        other.release_lease(namespace, "pr", holder="other")
        assert maker.take_lease(namespace, "pr", holder="maker", seconds=30), "let go by the other: the maker's"
        assert not other.take_lease(namespace, "pr", holder="other", seconds=30)
    finally:
        client.CoreV1Api(kube.api_client()).delete_namespace(namespace)


class Waiter:
    """A run waiting on a thread for the PR's lease another holds; `taken_at` is when it got it."""

    def __init__(self, kube: Any, ref: PrRef, *, holder: str) -> None:
        self.taken_at = 0.0
        self.lease = PrLease(connect(kubeconfig=str(kube.kubeconfig)), namespace=NAMESPACE, ref=ref, holder=holder)
        self.thread = threading.Thread(target=self._wait)
        self.thread.start()

    def _wait(self) -> None:
        with self.lease:
            self.taken_at = time.monotonic()

    def done(self) -> Waiter:
        self.thread.join(60)
        return self


def lease_requests(kube: Any, name: str, since: int) -> list[str]:
    """The requests about the Lease the emulator took since `since`: GET (a read), LIST, WATCH, PUT."""
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
    sent = [(method, path, path.split("?")[0]) for method, path in kube.server.requests[since:]]
    return [
        "WATCH" if "watch=true" in path else "LIST" if method == "GET" and bare == leases else method
        for method, path, bare in sent
        if bare == f"{leases}/{name}" or (bare == leases and name in path)
    ]


def test_a_run_waiting_for_a_lease_takes_it_as_soon_as_it_is_released_without_asking_meanwhile(
    cluster: KubernetesCluster, kube: Any
) -> None:
    ref = PrRef(repo=f"acme/{kube.unique('handoff')}", number=1)
    holding = PrLease(cluster, namespace=NAMESPACE, ref=ref, holder="first", seconds=30)
    with holding:
        since = len(kube.server.requests) if kube.server else 0
        waiting = Waiter(kube, ref, holder="second")
        time.sleep(2.5)  # longer than a run would once wait between two reads of a lease it waits for
        released = time.monotonic()
    waiter = waiting.done()
    try:
        assert waiter.taken_at, "the waiting run took the lease"
        # On a real cluster the watch's event comes through the API server's watch cache: still at once.
        assert waiter.taken_at - released < 1.0
        if kube.server:
            # Read and watched while held; released; read and taken, then given back: no polling.
            assert lease_requests(kube, holding.name, since) == ["GET", "WATCH", "PUT", "GET", "PUT", "PUT"]
    finally:
        client.CoordinationV1Api(kube.api_client()).delete_namespaced_lease(holding.name, NAMESPACE)


def test_a_run_waiting_for_a_lease_whose_holder_died_takes_it_when_it_runs_out(
    cluster: KubernetesCluster, kube: Any
) -> None:
    ref = PrRef(repo=f"acme/{kube.unique('dead-holder')}", number=1)
    name = PrLease(cluster, namespace=NAMESPACE, ref=ref, holder="-").name
    assert cluster.take_lease(NAMESPACE, name, holder="dead", seconds=3)  # and never renewed nor released
    renewed = time.monotonic()
    since = len(kube.server.requests) if kube.server else 0
    waiter = Waiter(kube, ref, holder="alive").done()
    try:
        assert waiter.taken_at, "the waiting run took the lease over"
        assert 3.0 <= waiter.taken_at - renewed < 4.0  # when it ran out: nothing was written to say so
        if kube.server:
            assert lease_requests(kube, name, since) == ["GET", "WATCH", "GET", "PUT", "PUT"]
        spec = client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(name, NAMESPACE).spec
        assert spec.holder_identity is None  # given back at the end
        assert spec.lease_transitions == 1
    finally:
        client.CoordinationV1Api(kube.api_client()).delete_namespaced_lease(name, NAMESPACE)


def test_a_wait_whose_version_of_the_lease_is_forgotten_ends_for_a_fresh_read_without_a_list(
    cluster: KubernetesCluster, lease: str, emulated_kube: Any
) -> None:
    """previewbot may not list leases: a watch the API answers 410 (history compacted) is not followed by a list."""
    assert cluster.take_lease(NAMESPACE, lease, holder="first", seconds=30)
    waiting = connect(kubeconfig=str(emulated_kube.kubeconfig))
    assert not waiting.take_lease(NAMESPACE, lease, holder="second", seconds=30)
    assert cluster.take_lease(NAMESPACE, lease, holder="first", seconds=30)  # renewed: a newer version
    emulated_kube.server.compact()
    since = len(emulated_kube.server.requests)

    waiting.wait_lease(NAMESPACE, lease, give_up=threading.Event())

    assert lease_requests(emulated_kube, lease, since) == ["WATCH"]
    assert not waiting.take_lease(NAMESPACE, lease, holder="second", seconds=30), "read anew: still held"
