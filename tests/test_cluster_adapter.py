"""The Kubernetes adapter, driven through the real kubernetes client against the `kube` cluster.

Every test here also passes on a real cluster (PREVIEWBOT_TEST_KUBECONFIG): names are unique,
deletes are waited for, and the images are real ones (pause for servers, busybox for scripts).
Tests that need the emulator's knobs take `emulated_kube`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import kubernetes
import pytest

from previewbot import errors, naming
from previewbot.adapters.kubernetes import KubeconfigError, KubernetesCluster, connect
from previewbot.model import Endpoint, EndpointKind, NamespaceInfo, ObjectRef, Readiness, WorkloadState
from tests.emulators.kube_plugin import KubeEnv, write_kubeconfig
from tests.emulators.silent import silent_server
from tests.harness import client_threads, eventually

WAIT = 90.0  # generous for a real cluster pulling images; the emulator answers in well under a second
SERVER_IMAGE = "registry.k8s.io/pause:3.9"
SHELL_IMAGE = "busybox:1.36"
OWNER = {naming.MANAGED_BY_LABEL: naming.MANAGED_BY_VALUE, naming.REPO_LABEL: "acme.shop"}
OWNED = ",".join(f"{key}={value}" for key, value in OWNER.items())


def fast_cluster(api_client: kubernetes.client.ApiClient) -> KubernetesCluster:
    return KubernetesCluster(
        api_client, recheck_interval=0.1, image_pull_grace=0.0, retry_wait=0.01, retry_max_wait=0.05
    )


@pytest.fixture
def cluster(kube: KubeEnv) -> KubernetesCluster:
    return fast_cluster(kube.api_client())


@pytest.fixture
def namespace(kube: KubeEnv, cluster: KubernetesCluster) -> Iterator[str]:
    name = kube.unique("adapter")
    cluster.create_namespace(name, labels=OWNER, annotations={})
    yield name
    with contextlib.suppress(errors.NotFound):
        cluster.delete_namespace(name)


@pytest.fixture
def core(kube: KubeEnv) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kube.api_client())


@pytest.fixture
def apps(kube: KubeEnv) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(kube.api_client())


def config_map(name: str, data: dict[str, str], *, labels: dict[str, str] = OWNER) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }


def deployment(name: str, *, image: str = SERVER_IMAGE, script: str | None = None, replicas: int = 1) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if script is not None:
        container["command"] = ["sh", "-c", script]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": OWNER},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def workload(kind: str, name: str) -> dict[str, Any]:
    """A StatefulSet or DaemonSet of one server container."""
    spec = deployment(name)["spec"]
    del spec["replicas"]
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "labels": OWNER}, "spec": spec}


def job(name: str, script: str, *, image: str = SHELL_IMAGE, component: str = "tests") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {**OWNER, naming.COMPONENT_LABEL: component}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "tests", "image": image, "command": ["sh", "-c", script]}],
                }
            },
        },
    }


def ref(obj: dict[str, Any], namespace: str) -> ObjectRef:
    return ObjectRef(api_version=obj["apiVersion"], kind=obj["kind"], name=obj["metadata"]["name"], namespace=namespace)


# ---------------------------------------------------------------- connecting


def test_connects_from_a_kubeconfig_path(kube: KubeEnv) -> None:
    cluster = connect(kubeconfig=str(kube.kubeconfig))

    assert cluster.namespace(kube.unique("absent")) is None


def test_connects_from_the_kubeconfig_text_itself(kube: KubeEnv) -> None:
    cluster = connect(kubeconfig=kube.kubeconfig.read_text())

    assert cluster.namespace(kube.unique("absent")) is None


def test_connects_from_the_kubeconfig_environment_variable(kube: KubeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))

    assert connect().namespace(kube.unique("absent")) is None


def test_a_broken_kubeconfig_text_is_reported_without_its_content() -> None:
    text = "users:\n- user:\n    token: s3cr3t-t0ken\n  bad: [\n"

    with pytest.raises(KubeconfigError, match="line") as raised:
        connect(kubeconfig=text)

    assert "s3cr3t-t0ken" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_a_missing_kubeconfig_file_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(KubeconfigError, match="kubeconfig"):
        connect(kubeconfig=str(tmp_path / "absent"))


# ---------------------------------------------------------------- namespaces


def test_namespace_lifecycle(kube: KubeEnv, cluster: KubernetesCluster) -> None:
    name = kube.unique("lifecycle")
    cluster.create_namespace(name, labels=OWNER, annotations={naming.STATUS_ANNOTATION: "deploying"})

    info = cluster.namespace(name)
    assert info is not None
    assert not info.terminating
    assert info.labels.items() >= OWNER.items()
    assert info.annotations[naming.STATUS_ANNOTATION] == "deploying"
    assert name in {ns.name for ns in cluster.namespaces(label_selector=f"{OWNED},kubernetes.io/metadata.name={name}")}
    with pytest.raises(errors.Conflict, match=name) as raised:
        cluster.create_namespace(name, labels=OWNER, annotations={})
    assert raised.value.status == 409

    cluster.annotate_namespace(
        name,
        annotations={naming.STATUS_ANNOTATION: None, naming.URL_ANNOTATION: "https://pr-1.example.test"},
        labels={naming.PR_LABEL: "1"},
    )
    info = cluster.namespace(name)
    assert info is not None
    assert naming.STATUS_ANNOTATION not in info.annotations
    assert info.annotations[naming.URL_ANNOTATION] == "https://pr-1.example.test"
    assert info.labels[naming.PR_LABEL] == "1"
    assert info.labels[naming.REPO_LABEL] == "acme.shop"

    cluster.delete_namespace(name)
    leaving = cluster.namespace(name)
    assert leaving is None or leaving.terminating
    progress: list[str] = []
    assert cluster.wait_namespace_gone(name, timeout=WAIT, progress=progress.append)
    assert cluster.namespace(name) is None
    with pytest.raises(errors.NotFound):
        cluster.delete_namespace(name)


def test_following_a_namespace_hears_each_change_and_stops_at_once(
    kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    heard: list[NamespaceInfo | None] = []
    threads_before = client_threads()
    other = fast_cluster(kube.api_client())  # another run, in another process or replica

    with cluster.following_namespace(namespace, heard.append):
        other.annotate_namespace(namespace, annotations={naming.WANTED_SHA_ANNOTATION: "2" * 40})
        eventually(
            lambda: any(ns and ns.annotations.get(naming.WANTED_SHA_ANNOTATION) == "2" * 40 for ns in heard),
            timeout=WAIT,
        )
        other.delete_namespace(namespace)
        eventually(lambda: heard[-1] is None or heard[-1].terminating, timeout=WAIT)
        leaving = time.monotonic()

    assert time.monotonic() - leaving < 5, "leaving waited for the watch to end by itself"
    assert {thread.name for thread in client_threads() - threads_before} == set()


def test_following_a_namespace_sends_one_watch_and_no_list_after_previewbot_wrote_it(
    emulated_kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    assert emulated_kube.server is not None
    cluster.annotate_namespace(namespace, annotations={naming.WANTED_SHA_ANNOTATION: "1" * 40})
    before = len(emulated_kube.server.requests)

    with cluster.following_namespace(namespace, lambda _: None):
        time.sleep(1.5)  # a once-a-second look would have asked at least once by now

    sent = emulated_kube.server.requests[before:]
    assert [(method, path.split("?")[0]) for method, path in sent] == [("GET", "/api/v1/namespaces")]
    assert "watch=true" in sent[0][1]


def test_a_terminating_namespace_cannot_be_created_again(emulated_kube: KubeEnv, cluster: KubernetesCluster) -> None:
    assert emulated_kube.server is not None
    emulated_kube.server.namespace_finalize_delay = 5.0
    name = emulated_kube.unique("terminating")
    cluster.create_namespace(name, labels=OWNER, annotations={})
    cluster.delete_namespace(name)

    info = cluster.namespace(name)
    assert info is not None
    assert info.terminating
    with pytest.raises(errors.Conflict):
        cluster.create_namespace(name, labels=OWNER, annotations={})
    progress: list[str] = []
    assert not cluster.wait_namespace_gone(name, timeout=0.3, progress=progress.append)
    assert progress == [f"namespace/{name}: waiting for its deletion to finish"]


# ---------------------------------------------------------------- apply and prune


def test_apply_then_reapply_with_a_removed_field_and_a_changed_image(
    namespace: str,
    cluster: KubernetesCluster,
    core: kubernetes.client.CoreV1Api,
    apps: kubernetes.client.AppsV1Api,
) -> None:
    settings = config_map("settings", {"greeting": "hello", "colour": "blue"})
    web = deployment("web", image="registry.k8s.io/pause:3.8")

    applied = cluster.apply(namespace, [settings, web])

    assert applied == [ref(settings, namespace), ref(web, namespace)]
    assert core.read_namespaced_config_map("settings", namespace).data == {
        "greeting": "hello",
        "colour": "blue",
    }

    cluster.apply(namespace, [config_map("settings", {"greeting": "hello"}), deployment("web", image=SERVER_IMAGE)])

    assert core.read_namespaced_config_map("settings", namespace).data == {"greeting": "hello"}
    container = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers[0]
    assert container.image == SERVER_IMAGE


def test_apply_records_previewbot_as_the_field_manager(
    namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.apply(namespace, [config_map("settings", {"greeting": "hello"})])

    managed = core.read_namespaced_config_map("settings", namespace).metadata.managed_fields or []
    assert [(entry.manager, entry.operation) for entry in managed] == [(naming.FIELD_MANAGER, "Apply")]


def test_apply_takes_over_fields_another_manager_set(
    namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"greeting": "hi"}}, field_manager="kubectl"
    )

    cluster.apply(namespace, [config_map("settings", {"greeting": "hello"})])

    assert core.read_namespaced_config_map("settings", namespace).data == {"greeting": "hello"}


def test_apply_names_the_object_the_api_refused(namespace: str, cluster: KubernetesCluster) -> None:
    broken = deployment("web")
    del broken["spec"]["selector"]

    with pytest.raises(errors.Invalid, match=r"Deployment/web.*selector") as raised:
        cluster.apply(namespace, [config_map("fine", {}), broken])
    assert raised.value.status == 422


def test_apply_names_an_object_of_a_kind_the_cluster_does_not_serve(namespace: str, cluster: KubernetesCluster) -> None:
    widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}

    with pytest.raises(errors.Invalid, match=r"Widget/w.*Widget"):
        cluster.apply(namespace, [widget])


def test_apply_refuses_cluster_wide_kinds(namespace: str, cluster: KubernetesCluster) -> None:
    other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}}

    with pytest.raises(errors.ManifestError, match="Namespace/elsewhere"):
        cluster.apply(namespace, [other])


def test_apply_sends_one_request_per_object_and_asks_no_discovery_for_built_in_kinds(
    emulated_kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    assert emulated_kube.server is not None
    objects = [config_map(f"settings-{index}", {}) for index in range(10)] + [deployment("web")]
    before = len(emulated_kube.server.requests)

    cluster.apply(namespace, objects)

    sent = emulated_kube.server.requests[before:]
    assert len(sent) == len(objects)
    assert all(method == "PATCH" for method, _ in sent)


def test_apply_asks_discovery_once_per_group_version_of_kinds_it_does_not_know(
    emulated_kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    assert emulated_kube.server is not None
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 2,
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}
    before = len(emulated_kube.server.requests)

    cluster.apply(namespace, [autoscaler, budget])
    for _ in range(2):
        with pytest.raises(errors.Invalid, match="Widget"):
            cluster.apply(namespace, [widget])

    discovery = [path for method, path in emulated_kube.server.requests[before:] if path.count("/") <= 3]
    assert discovery == ["/apis/example.test/v1", "/apis"]  # and the groups served, for the message


def test_apply_puts_what_pods_need_in_place_before_the_workloads(
    emulated_kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    assert emulated_kube.server is not None
    web = deployment("web")
    web["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}
    before = len(emulated_kube.server.requests)

    applied = cluster.apply(namespace, [web, config_map("settings", {"A": "1"}), account])

    plurals = [path.split("?")[0].split("/")[-2] for _, path in emulated_kube.server.requests[before:]]
    assert plurals.index("deployments") > max(plurals.index("configmaps"), plurals.index("serviceaccounts"))
    assert [r.kind for r in applied] == ["Deployment", "ConfigMap", "ServiceAccount"]
    assert cluster.wait_rollout(namespace, applied, timeout=WAIT).ok


def test_a_rollout_is_watched_not_polled(emulated_kube: KubeEnv, namespace: str) -> None:
    assert emulated_kube.server is not None
    cluster = KubernetesCluster(emulated_kube.api_client(), recheck_interval=5.0)
    applied = cluster.apply(namespace, [deployment(f"web-{index}") for index in range(10)])
    before = len(emulated_kube.server.requests)

    result = cluster.wait_rollout(namespace, applied, timeout=WAIT)

    assert result.ok, result.failed
    # One list, then one watch for as long as it takes: not a request per workload, nor per change.
    requests = [path.split("?")[0] for _, path in emulated_kube.server.requests[before:]]
    assert requests in ([f"/apis/apps/v1/namespaces/{namespace}/deployments"] * n for n in (1, 2, 3))


def test_a_rollout_after_a_deadline_that_passed_is_waited_for_afresh(
    namespace: str, cluster: KubernetesCluster, apps: kubernetes.client.AppsV1Api
) -> None:
    stuck = deployment("late", image="registry.invalid/acme/web:1")
    stuck["spec"]["progressDeadlineSeconds"] = 1
    cluster.apply(namespace, [stuck])

    def deadline_passed() -> bool:
        status = apps.read_namespaced_deployment("late", namespace).status
        return any(c.reason == "ProgressDeadlineExceeded" for c in status.conditions or ())

    eventually(deadline_passed, timeout=WAIT)
    [fixed] = cluster.apply(namespace, [deployment("late")])

    # Until the controller sees the new spec, the old deadline still shows: it must not end this wait.
    result = cluster.wait_rollout(namespace, [fixed], timeout=WAIT)

    assert result.ok, result.failed


def test_prune_deletes_only_labelled_objects_not_kept(
    namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    kept, dropped = config_map("kept", {}), config_map("dropped", {})
    applied = cluster.apply(namespace, [kept, dropped])
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "someone-elses"}})

    pruned = cluster.prune(
        namespace,
        label_selector=OWNED,
        kinds=[("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("example.test/v1", "Widget")],
        keep={applied[0]},
    )

    assert pruned == [ref(dropped, namespace)]
    remaining = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    assert {"kept", "someone-elses"} <= remaining
    assert (
        "dropped" not in remaining or core.read_namespaced_config_map("dropped", namespace).metadata.deletion_timestamp
    )


def test_prune_leaves_what_another_object_owns(
    namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    cluster.apply(namespace, [config_map("owner", {})])
    uid = core.read_namespaced_config_map("owner", namespace).metadata.uid
    made = config_map("made-by-owner", {})
    made["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]
    core.create_namespaced_config_map(namespace, made)

    pruned = cluster.prune(
        namespace, label_selector=OWNED, kinds=[("v1", "ConfigMap")], keep={ref(config_map("owner", {}), namespace)}
    )

    assert pruned == []
    assert core.read_namespaced_config_map("made-by-owner", namespace).metadata.deletion_timestamp is None


def test_prune_matches_kept_objects_whatever_their_namespace_field(namespace: str, cluster: KubernetesCluster) -> None:
    cluster.apply(namespace, [config_map("kept", {})])

    pruned = cluster.prune(
        namespace,
        label_selector=OWNED,
        kinds=[("v1", "ConfigMap")],
        keep={ObjectRef(api_version="v1", kind="ConfigMap", name="kept")},
    )

    assert pruned == []


# ---------------------------------------------------------------- errors


def test_api_errors_become_previewbot_errors_with_the_api_message(kube: KubeEnv, cluster: KubernetesCluster) -> None:
    absent = kube.unique("absent")

    with pytest.raises(errors.NotFound, match=absent) as raised:
        cluster.delete_namespace(absent)

    assert raised.value.status == 404
    assert isinstance(raised.value.__cause__, kubernetes.client.exceptions.ApiException)
    with pytest.raises(errors.NotFound):
        cluster.annotate_namespace(absent, annotations={"a": "b"})


def test_an_unreachable_api_is_a_temporary_error_after_retries(tmp_path: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.api_key = {"authorization": "Bearer s3cr3t-t0ken"}
    cluster = KubernetesCluster(
        kubernetes.client.ApiClient(configuration), retry_attempts=2, retry_wait=0.01, retry_max_wait=0.01
    )

    with pytest.raises(errors.TemporaryError, match="cannot reach the Kubernetes API") as raised:
        cluster.namespace("anything")

    assert "s3cr3t-t0ken" not in str(raised.value)


def test_an_api_server_that_never_answers_fails_within_the_bound(tmp_path: Path) -> None:
    with silent_server() as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
        cluster = connect(kubeconfig=str(kubeconfig), request_timeout=(0.5, 0.5))
        started = time.monotonic()

        with pytest.raises(errors.TemporaryError, match="the Kubernetes API did not answer in time") as raised:
            cluster.namespace("anything")

    # Four tries of half a second and the backoff between them (0.5 s, 1 s, 2 s); without a bound, forever.
    assert time.monotonic() - started < 15
    assert "emulated-token" not in str(raised.value)


class ScriptedApi(ThreadingHTTPServer):
    """An API that serves discovery for Namespaces and answers one namespace's GETs from a script."""

    DISCOVERY: ClassVar[dict[str, object]] = {
        "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
        "/api/v1": {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {
                    "name": "namespaces",
                    "singularName": "namespace",
                    "namespaced": False,
                    "kind": "Namespace",
                    "verbs": ["get"],
                }
            ],
        },
    }

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.answers = answers
        self.hits = 0

    def cluster(self) -> KubernetesCluster:
        configuration = kubernetes.client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.server_address[1]}"
        return KubernetesCluster(
            kubernetes.client.ApiClient(configuration), retry_attempts=3, retry_wait=0.01, retry_max_wait=0.05
        )


class ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedApi

    def do_GET(self) -> None:
        if self.path in ScriptedApi.DISCOVERY:
            self.answer(200, {}, ScriptedApi.DISCOVERY[self.path])
            return
        if self.path != "/api/v1/namespaces/shop":
            self.answer(404, {}, {"kind": "Status", "apiVersion": "v1", "code": 404, "message": "not served"})
            return
        self.server.hits += 1
        status, headers = self.server.answers.pop(0) if self.server.answers else (200, {})
        body = (
            {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "shop"}, "status": {"phase": "Active"}}
            if status == 200
            else {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": status,
                "message": f"said {status}",
            }
        )
        self.answer(status, headers, body)

    def answer(self, status: int, headers: dict[str, str], body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted_api() -> Iterator[ScriptedApi]:
    server = ScriptedApi([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


def test_server_errors_and_rate_limits_are_retried(scripted_api: ScriptedApi) -> None:
    scripted_api.answers += [(503, {}), (429, {"Retry-After": "0"})]

    info = scripted_api.cluster().namespace("shop")

    assert info is not None
    assert scripted_api.hits == 3


def test_retries_give_up_with_a_temporary_error(scripted_api: ScriptedApi) -> None:
    scripted_api.answers += [(500, {})] * 3

    with pytest.raises(errors.TemporaryError, match="said 500") as raised:
        scripted_api.cluster().namespace("shop")

    assert raised.value.status == 500
    assert scripted_api.hits == 3


def test_a_refusal_is_not_retried(scripted_api: ScriptedApi) -> None:
    scripted_api.answers += [(403, {})]

    with pytest.raises(errors.Forbidden, match="said 403"):
        scripted_api.cluster().namespace("shop")

    assert scripted_api.hits == 1


def test_without_any_kubeconfig_outside_a_pod_connecting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(KubeconfigError, match="cannot use the kubeconfig"):
        connect()


# ---------------------------------------------------------------- secrets


def test_copy_secret_copies_type_and_data_only_and_replaces_an_existing_copy(
    kube: KubeEnv, namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    source_namespace = kube.unique("source")
    cluster.create_namespace(source_namespace, labels=OWNER, annotations={})
    try:
        core.create_namespaced_secret(
            source_namespace,
            {
                "metadata": {
                    "name": "registry",
                    "labels": {"team": "shop"},
                    "annotations": {"note": "origin"},
                },
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "e30="},
            },
        )
        copied_labels = {**OWNER, naming.COMPONENT_LABEL: "secret"}

        cluster.copy_secret(
            source_namespace=source_namespace,
            name="registry",
            target_namespace=namespace,
            labels=copied_labels,
        )
        core.patch_namespaced_secret("registry", source_namespace, {"data": {".dockerconfigjson": "e30K"}})
        cluster.copy_secret(
            source_namespace=source_namespace,
            name="registry",
            target_namespace=namespace,
            labels=copied_labels,
        )
        cluster.copy_secret(
            source_namespace=source_namespace,
            name="registry",
            target_namespace=namespace,
            labels=copied_labels,
            target_name="pull-secret",
        )

        for name in ("registry", "pull-secret"):
            copy = core.read_namespaced_secret(name, namespace)
            assert copy.type == "kubernetes.io/dockerconfigjson"
            assert copy.data == {".dockerconfigjson": "e30K"}
            assert copy.metadata.labels == copied_labels
            assert not (copy.metadata.annotations or {}).get("note")
        with pytest.raises(errors.NotFound):
            cluster.copy_secret(
                source_namespace=source_namespace,
                name="absent",
                target_namespace=namespace,
                labels=copied_labels,
            )
    finally:
        cluster.delete_namespace(source_namespace)


# ---------------------------------------------------------------- rollout and diagnosis


def test_rollout_waits_for_every_kind_of_workload(namespace: str, cluster: KubernetesCluster) -> None:
    applied = cluster.apply(
        namespace,
        [
            config_map("settings", {}),
            deployment("web", replicas=2),
            workload("StatefulSet", "db"),
            workload("DaemonSet", "agent"),
            job("migrate", "echo migrated"),
        ],
    )
    progress: list[str] = []

    result = cluster.wait_rollout(namespace, applied, timeout=WAIT, progress=progress.append)

    assert result.ok, result.failed
    assert set(result.ready) == set(applied)
    assert "deployment/web: 2/2 ready" in progress
    assert "statefulset/db: 1/1 ready" in progress
    assert "job/migrate: 1/1 succeeded" in progress


def test_an_image_that_cannot_be_pulled_fails_the_rollout_early_and_is_diagnosed(
    namespace: str, cluster: KubernetesCluster
) -> None:
    applied = cluster.apply(namespace, [deployment("web", image="registry.invalid/shop:1")])

    result = cluster.wait_rollout(namespace, applied, timeout=WAIT)

    assert not result.ok
    (diagnosis,) = result.failed
    assert diagnosis.workload == applied[0]
    assert "not ready after" not in diagnosis.summary
    assert "0/1 ready" in diagnosis.summary
    (problem,) = diagnosis.problems
    assert problem.container == "app"
    assert problem.pod.startswith("web-")
    assert problem.reason in ("ErrImagePull", "ImagePullBackOff")
    assert "registry.invalid/shop:1" in problem.message
    assert problem.log_tail == ""
    assert any(event.startswith(f"Warning Failed pod/{problem.pod}: ") for event in diagnosis.events)


def test_stuck_workloads_among_many_are_found_with_one_pod_list_per_quiet_spell(
    emulated_kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    assert emulated_kube.server is not None
    healthy = [deployment(f"web-{index}") for index in range(5)]
    stuck = [deployment(f"stuck-{index}", image="registry.invalid/shop:1") for index in range(3)]
    applied = cluster.apply(namespace, [*healthy, *stuck])
    before = len(emulated_kube.server.requests)

    result = cluster.wait_rollout(namespace, applied, timeout=WAIT)

    assert sorted(d.workload.name for d in result.failed) == ["stuck-0", "stuck-1", "stuck-2"]
    sent = [path for _, path in emulated_kube.server.requests[before:]]
    watches = sum(1 for path in sent if "/deployments?" in path and "watch=true" in path)
    pod_lists = [path for path in sent if path.split("?")[0].endswith("/pods") and "watch=" not in path]
    # One watch throughout; the namespace's pods once per quiet spell (this one, as the grace is
    # none); each stuck one's pods once, for its diagnosis.
    assert watches == 1
    assert sum(1 for path in pod_lists if "labelSelector=" not in path) == 1
    assert sum(1 for path in pod_lists if "labelSelector=" in path) == len(stuck)


def _listed_by_a_wait(kube: KubeEnv, namespace: str, since: int) -> None:
    """On the emulator, until the wait's first list has been answered: the apply that follows is then after it."""
    if kube.server is None:
        return  # on a real cluster the wait may list before or after the apply: the outcome is the same
    listing = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    eventually(lambda: any(path == listing for _, path in kube.server.requests[since:]), timeout=WAIT)


def test_a_wait_begun_before_a_redeploy_never_takes_the_workload_as_it_was_for_its_rollout(
    kube: KubeEnv, namespace: str, cluster: KubernetesCluster
) -> None:
    [web] = cluster.apply(namespace, [deployment("web")])
    assert cluster.wait_rollout(namespace, [web], timeout=WAIT).ok
    if kube.server is not None:
        kube.server.watch_lag = 0.5  # the changed Deployment reaches the watch well after the apply ended
    applied: Future[None] = Future()
    since = len(kube.server.requests) if kube.server else 0

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(cluster.wait_rollout, namespace, [web], timeout=WAIT, applied=applied)
        _listed_by_a_wait(kube, namespace, since)
        cluster.apply(namespace, [deployment("web", image="registry.invalid/shop:2")])
        applied.set_result(None)
        result = waiting.result()

    # The wait listed the Deployment ready, as it was before: the new spec's pods cannot be pulled.
    assert not result.ok
    (diagnosis,) = result.failed
    assert diagnosis.workload == web
    assert {problem.reason for problem in diagnosis.problems} & {"ErrImagePull", "ImagePullBackOff"}


def test_a_wait_begun_before_an_apply_that_changes_nothing_ends_as_the_apply_does(
    kube: KubeEnv, namespace: str
) -> None:
    unhurried = KubernetesCluster(kube.api_client(), recheck_interval=60.0)
    [web] = unhurried.apply(namespace, [deployment("web")])
    assert unhurried.wait_rollout(namespace, [web], timeout=WAIT).ok
    applied: Future[None] = Future()
    since = len(kube.server.requests) if kube.server else 0

    with ThreadPoolExecutor(max_workers=1) as pool:
        began = time.monotonic()
        waiting = pool.submit(unhurried.wait_rollout, namespace, [web], timeout=WAIT, applied=applied)
        _listed_by_a_wait(kube, namespace, since)
        unhurried.apply(namespace, [deployment("web")])
        applied.set_result(None)
        result = waiting.result()

    assert result.ok, result.failed
    # The watch shows nothing new: the apply's end woke the wait, not its look at the pods a minute on.
    assert time.monotonic() - began < 30


def test_an_apply_that_fails_ends_the_wait_begun_beside_it_at_once_with_its_error(
    kube: KubeEnv, namespace: str
) -> None:
    unhurried = KubernetesCluster(kube.api_client(), recheck_interval=60.0)
    [web] = unhurried.apply(namespace, [deployment("web")])
    threads_before = client_threads()
    applied: Future[None] = Future()
    since = len(kube.server.requests) if kube.server else 0
    broken = deployment("broken")
    broken["spec"]["selector"] = {"matchLabels": {"app": "another"}}

    with ThreadPoolExecutor(max_workers=1) as pool:
        began = time.monotonic()
        waiting = pool.submit(unhurried.wait_rollout, namespace, [web], timeout=WAIT, applied=applied)
        _listed_by_a_wait(kube, namespace, since)
        with pytest.raises(errors.Invalid) as refused:
            unhurried.apply(namespace, [config_map("settings", {}), broken])
        applied.set_exception(refused.value)
        with pytest.raises(errors.Invalid) as ended:
            waiting.result()

    assert ended.value is refused.value
    assert str(refused.value).startswith("Deployment/broken was refused: ")
    # Nothing the watch shows changed: the apply's end woke the wait, not its look at the pods a minute on.
    assert time.monotonic() - began < 30
    assert {thread.name for thread in client_threads() - threads_before} == set()


def test_a_crash_loop_fails_the_rollout_with_the_previous_run_s_log(namespace: str, cluster: KubernetesCluster) -> None:
    script = "echo starting the shop\necho cannot reach the database\nexit 3"
    applied = cluster.apply(namespace, [deployment("web", image=SHELL_IMAGE, script=script)])

    progress: list[str] = []
    result = cluster.wait_rollout(namespace, applied, timeout=WAIT, progress=progress.append)

    (diagnosis,) = result.failed
    (problem,) = diagnosis.problems
    assert progress[-1] == f"deployment/web: failed, container app of pod {problem.pod}: CrashLoopBackOff"
    assert problem.reason == "CrashLoopBackOff"
    assert problem.restarts >= 1
    assert problem.log_tail.splitlines()[-2:] == ["starting the shop", "cannot reach the database"]
    assert "CrashLoopBackOff" in diagnosis.summary
    assert any(f"BackOff pod/{problem.pod}" in event for event in diagnosis.events)
    assert len(diagnosis.events) == len(set(diagnosis.events)) <= 20


def test_a_missing_secret_fails_the_rollout_early(namespace: str, cluster: KubernetesCluster) -> None:
    web = deployment("web")
    web["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}}}
    ]
    applied = cluster.apply(namespace, [web])

    (diagnosis,) = cluster.wait_rollout(namespace, applied, timeout=WAIT).failed

    assert [problem.reason for problem in diagnosis.problems] == ["CreateContainerConfigError"]
    assert "absent" in diagnosis.problems[0].message


def test_a_pull_failure_within_its_grace_is_waited_for_until_the_timeout(kube: KubeEnv, namespace: str) -> None:
    patient = KubernetesCluster(kube.api_client(), recheck_interval=0.1, image_pull_grace=600.0)
    applied = patient.apply(namespace, [deployment("web", image="registry.invalid/shop:1")])

    result = patient.wait_rollout(namespace, applied, timeout=1.0 if kube.emulated else 15.0)

    (diagnosis,) = result.failed
    assert diagnosis.summary.startswith("not ready after ")
    assert diagnosis.summary.endswith(" (0/1 ready)")
    assert diagnosis.problems[0].reason in ("ErrImagePull", "ImagePullBackOff", "ContainerCreating")


def test_a_rollout_says_how_far_each_workload_got(kube: KubeEnv, namespace: str) -> None:
    patient = KubernetesCluster(kube.api_client(), recheck_interval=0.1, image_pull_grace=600.0)
    [database] = patient.apply(namespace, [workload("StatefulSet", "db")])
    assert patient.wait_rollout(namespace, [database], timeout=WAIT).ok
    [web] = patient.apply(namespace, [deployment("web", image="registry.invalid/shop:1")])

    # The StatefulSets' turn never comes while the Deployment is waited for: it is read once at the end.
    result = patient.wait_rollout(namespace, [web, database], timeout=1.0 if kube.emulated else 15.0)

    assert result.workloads == (
        WorkloadState(workload=web, readiness=Readiness.WAITING, ready=0, desired=1),
        WorkloadState(workload=database, readiness=Readiness.READY, ready=1, desired=1),
    )
    assert [d.workload for d in result.failed] == [web]


def test_diagnose_a_healthy_workload_finds_no_problem(namespace: str, cluster: KubernetesCluster) -> None:
    applied = cluster.apply(namespace, [deployment("web")])
    assert cluster.wait_rollout(namespace, applied, timeout=WAIT).ok

    diagnosis = cluster.diagnose(namespace, applied[0])

    assert diagnosis.summary == "1/1 ready"
    assert diagnosis.problems == ()


def test_a_rollout_wait_ends_as_soon_as_it_is_stopped(kube: KubeEnv, namespace: str) -> None:
    """A newer push stops an older run's rollout wait: the wait looks at `stop` far more often than at the pods."""
    unhurried = KubernetesCluster(kube.api_client(), recheck_interval=60.0)
    [web] = unhurried.apply(namespace, [deployment("web", image="registry.invalid/shop:never")])
    stop = threading.Event()
    since = len(kube.server.requests) if kube.server else 0

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(unhurried.wait_rollout, namespace, [web], timeout=WAIT, stop=stop)
        _listed_by_a_wait(kube, namespace, since)
        time.sleep(1.0)  # the watch has shown what the apply changed: the wait sleeps until its next look
        stop.set()
        stopped = time.monotonic()
        result = waiting.result()

    assert time.monotonic() - stopped < 1.0
    assert not result.ok
    assert [state.readiness for state in result.workloads] == [Readiness.WAITING]


# ---------------------------------------------------------------- endpoints


def ingress(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": spec}


def service(name: str, kind: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    spec = {"type": kind, "selector": {"app": "web"}, "ports": ports}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_endpoints_are_each_ingress_rule_and_each_external_service(
    namespace: str, cluster: KubernetesCluster, core: kubernetes.client.CoreV1Api
) -> None:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    paths = [{"path": path, "pathType": "Prefix", "backend": backend} for path in ("/", "/api")]
    cluster.apply(
        namespace,
        [
            ingress(
                "app",
                {
                    "tls": [{"hosts": ["*.example.com"], "secretName": "wildcard"}],
                    "rules": [{"host": "app.example.com", "http": {"paths": paths}}, {"http": {"paths": paths[:1]}}],
                },
            ),
            ingress("fallback", {"defaultBackend": backend}),
            service(
                "dns", "LoadBalancer", [{"name": "udp", "port": 53, "protocol": "UDP"}, {"name": "tcp", "port": 53}]
            ),
            service("debug", "NodePort", [{"port": 80}]),
            service("web", "ClusterIP", [{"port": 80}]),
        ],
    )
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "dns.example.net"}]}}}
    core.patch_namespaced_service_status("dns", namespace, status)
    node_port = core.read_namespaced_service("debug", namespace).spec.ports[0].node_port

    found = cluster.endpoints(namespace, kinds=set(EndpointKind))

    assert found == [
        Endpoint(kind=EndpointKind.INGRESS, name="app", host="app.example.com", path="/", tls=True),
        Endpoint(kind=EndpointKind.INGRESS, name="app", host="app.example.com", path="/api", tls=True),
        Endpoint(kind=EndpointKind.INGRESS, name="app", path="/"),
        Endpoint(kind=EndpointKind.INGRESS, name="fallback"),
        Endpoint(kind=EndpointKind.NODE_PORT, name="debug", ports=(str(node_port),)),
        Endpoint(
            kind=EndpointKind.LOAD_BALANCER,
            name="dns",
            ports=("53/UDP", "53"),
            addresses=("203.0.113.7", "dns.example.net"),
        ),
    ]
    assert cluster.endpoints(namespace, kinds={EndpointKind.NODE_PORT}) == found[4:5]


# ---------------------------------------------------------------- jobs


def test_a_job_that_succeeds_returns_its_whole_log(namespace: str, cluster: KubernetesCluster) -> None:
    script = "echo running 2 tests\ncat <<'EOF'\nok 1 - home page\nok 2 - checkout\nEOF\necho done"
    progress: list[str] = []

    outcome = cluster.run_job(namespace, job("e2e", script), timeout=WAIT, progress=progress.append)

    assert outcome.succeeded
    assert not outcome.timed_out
    assert outcome.diagnosis is None
    assert outcome.log == "running 2 tests\nok 1 - home page\nok 2 - checkout\ndone\n"
    assert progress == ["job/e2e: started", "job/e2e: succeeded"]


def test_a_job_that_fails_returns_its_log(namespace: str, cluster: KubernetesCluster) -> None:
    outcome = cluster.run_job(namespace, job("e2e", "echo 1 test failed\nexit 1"), timeout=WAIT)

    assert not outcome.succeeded
    assert not outcome.timed_out
    assert outcome.diagnosis is None
    assert outcome.log == "1 test failed\n"


def test_a_job_replaces_the_previous_run_of_the_same_name(namespace: str, cluster: KubernetesCluster) -> None:
    cluster.run_job(namespace, job("e2e", "echo first run"), timeout=WAIT)

    outcome = cluster.run_job(namespace, job("e2e", "echo second run"), timeout=WAIT)

    assert outcome.succeeded
    assert outcome.log == "second run\n"


def test_a_job_whose_image_cannot_be_pulled_ends_early_with_a_diagnosis(
    namespace: str, cluster: KubernetesCluster, kube: KubeEnv
) -> None:
    outcome = cluster.run_job(namespace, job("e2e", "echo never", image="registry.invalid/e2e:1"), timeout=WAIT)

    assert not outcome.succeeded
    assert not outcome.timed_out
    assert outcome.diagnosis is not None
    assert outcome.diagnosis.workload.name == "e2e"
    assert outcome.diagnosis.problems[0].reason in ("ErrImagePull", "ImagePullBackOff")
    assert_deleted(kube, namespace, "e2e")


def test_a_job_whose_deadline_passes_while_its_image_cannot_be_pulled_never_ran(kube: KubeEnv, namespace: str) -> None:
    patient = KubernetesCluster(kube.api_client(), recheck_interval=0.1, image_pull_grace=600.0)
    doomed = job("e2e", "echo never", image="registry.invalid/e2e:1")
    doomed["spec"]["activeDeadlineSeconds"] = 30

    outcome = patient.run_job(namespace, doomed, timeout=WAIT)

    assert not outcome.succeeded
    assert not outcome.timed_out
    assert outcome.diagnosis is not None
    assert "deadline" in outcome.diagnosis.summary
    assert "container tests of pod e2e-" in outcome.diagnosis.summary
    assert "ImagePullBackOff" in outcome.diagnosis.summary or "ErrImagePull" in outcome.diagnosis.summary


def test_a_job_that_outlives_its_timeout_is_stopped_and_its_log_kept(
    namespace: str, cluster: KubernetesCluster, kube: KubeEnv
) -> None:
    timeout = 1.0 if kube.emulated else 30.0

    outcome = cluster.run_job(namespace, job("e2e", "echo waiting for the preview\nsleep 3600"), timeout=timeout)

    assert outcome.timed_out
    assert not outcome.succeeded
    assert outcome.log == "waiting for the preview\n"
    assert_deleted(kube, namespace, "e2e")


def test_a_job_ends_as_soon_as_it_is_stopped_and_its_log_is_kept(
    namespace: str, kube: KubeEnv, core: kubernetes.client.CoreV1Api
) -> None:
    unhurried = KubernetesCluster(kube.api_client(), recheck_interval=60.0)
    stop = threading.Event()

    def running() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=e2e").items
        return any(pod.status.phase == "Running" for pod in pods)

    with ThreadPoolExecutor(max_workers=1) as pool:
        outcome = pool.submit(
            unhurried.run_job,
            namespace,
            job("e2e", "echo waiting for the preview\nsleep 3600"),
            timeout=WAIT,
            stop=stop,
        )
        eventually(running, timeout=WAIT)
        time.sleep(1.0)  # the watch has shown the pod running: the wait sleeps until the pod or Job changes
        stop.set()
        stopped = time.monotonic()
        stopped_job = outcome.result()

    assert time.monotonic() - stopped < 2.0  # its log read and the Job deleted included
    assert not stopped_job.timed_out
    assert not stopped_job.succeeded
    assert stopped_job.log == "waiting for the preview\n"
    assert_deleted(kube, namespace, "e2e")


def test_a_job_ended_by_its_own_deadline_timed_out(namespace: str, cluster: KubernetesCluster) -> None:
    slow = job("e2e", "echo waiting for the preview\nsleep 3600")
    slow["spec"]["activeDeadlineSeconds"] = 50

    outcome = cluster.run_job(namespace, slow, timeout=WAIT)

    assert outcome.timed_out
    assert not outcome.succeeded
    assert outcome.diagnosis is None


def test_delete_jobs_spares_the_kept_one_and_jobs_not_selected(
    namespace: str, cluster: KubernetesCluster, kube: KubeEnv
) -> None:
    cluster.apply(
        namespace,
        [job("e2e-1", "echo 1"), job("e2e-2", "echo 2"), job("migrate", "echo m", component="app")],
    )

    deleted = cluster.delete_jobs(namespace, label_selector=f"{naming.COMPONENT_LABEL}=tests", keep="e2e-2")

    assert deleted == ["e2e-1"]
    assert_deleted(kube, namespace, "e2e-1")
    batch = kubernetes.client.BatchV1Api(kube.api_client())
    assert batch.read_namespaced_job("e2e-2", namespace).metadata.deletion_timestamp is None
    assert batch.read_namespaced_job("migrate", namespace).metadata.deletion_timestamp is None


def assert_deleted(kube: KubeEnv, namespace: str, job_name: str) -> None:
    """Gone, or on its way out (a real cluster finishes deleting a Job's pods first)."""
    batch = kubernetes.client.BatchV1Api(kube.api_client())
    left = batch.list_namespaced_job(namespace, field_selector=f"metadata.name={job_name}").items
    assert all(job.metadata.deletion_timestamp for job in left)
