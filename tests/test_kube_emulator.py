"""The emulated Kubernetes API, driven through the official client as previewbot drives a real cluster."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException
from kubernetes.dynamic import DynamicClient

from tests.emulators.kube_plugin import KubeEnv


@pytest.fixture
def api(kube: KubeEnv) -> client.ApiClient:
    return kube.api_client()


@pytest.fixture
def namespace(kube: KubeEnv, api: client.ApiClient) -> Iterator[str]:
    name = kube.unique("emu")
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    try:
        client.CoreV1Api(api).delete_namespace(name)
    except ApiException as error:
        if error.status != 404:  # a test may have deleted it already
            raise


def deployment(name: str, *, image: str = "registry.k8s.io/pause:3.9", **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, **container}]},
            },
        },
    }


def status_of(error: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    body = json.loads(error.value.body)
    assert body["kind"] == "Status"
    return body["code"], body["reason"]


# ---------------------------------------------------------------- discovery and CRUD


def test_discovery_serves_every_resource_previewbot_applies(api: client.ApiClient) -> None:
    dynamic = DynamicClient(api)

    for api_version, kind in [
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("networking.k8s.io/v1", "Ingress"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("policy/v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ]:
        assert dynamic.resources.get(api_version=api_version, kind=kind).kind == kind
    assert dynamic.resources.get(api_version="v1", kind="Namespace").namespaced is False
    assert client.VersionApi(api).get_code().major == "1"


def test_crud_round_trip_with_not_found_and_already_exists(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    assert created.metadata.uid
    assert created.metadata.resource_version

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}})
    assert status_of(exists) == (409, "AlreadyExists")

    created.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("settings", namespace, created)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    patched = core.patch_namespaced_config_map("settings", namespace, {"data": {"a": None, "c": "3"}})
    assert patched.data == {"b": "2", "c": "3"}
    json_patched = core.patch_namespaced_config_map(
        "settings", namespace, [{"op": "replace", "path": "/data/b", "value": "20"}]
    )
    assert json_patched.data["b"] == "20"

    names = [cm.metadata.name for cm in core.list_config_map_for_all_namespaces().items]
    assert "settings" in names

    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("settings", namespace)
    assert status_of(missing) == (404, "NotFound")


def test_a_stale_resource_version_is_a_conflict(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "token"}, "stringData": {"k": "v"}}
    )
    core.patch_namespaced_secret("token", namespace, {"metadata": {"labels": {"touched": "yes"}}})

    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_secret("token", namespace, first)
    assert status_of(stale) == (409, "Conflict")


def test_generation_grows_on_spec_changes_only(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(namespace, deployment("web"))
    assert created.metadata.generation == 1
    labelled = apps.patch_namespaced_deployment("web", namespace, {"metadata": {"labels": {"tier": "front"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 2}})
    assert scaled.metadata.generation == 2


def test_invalid_objects_are_rejected_with_422(api: client.ApiClient, namespace: str) -> None:
    body = deployment("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}

    with pytest.raises(ApiException) as rejected:
        client.AppsV1Api(api).create_namespaced_deployment(namespace, body)
    assert status_of(rejected) == (422, "Invalid")


# ---------------------------------------------------------------- server-side apply


def test_server_side_apply_creates_updates_and_removes_fields_its_manager_dropped(
    api: client.ApiClient, namespace: str
) -> None:
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment("web", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    body["metadata"]["labels"]["stale"] = "yes"

    created = dynamic.server_side_apply(
        resource, body=body, namespace=namespace, field_manager="previewbot", force_conflicts=True
    )
    assert created.metadata.labels["stale"] == "yes"

    client.AppsV1Api(api).patch_namespaced_deployment(
        "web", namespace, {"metadata": {"annotations": {"by-hand": "kept"}}}
    )
    del body["metadata"]["labels"]["stale"]
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "10"}]
    updated = dynamic.server_side_apply(
        resource, body=body, namespace=namespace, field_manager="previewbot", force_conflicts=True
    )

    assert "stale" not in updated.metadata.labels
    assert updated.to_dict()["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "10"}
    ]
    assert updated.to_dict()["metadata"]["annotations"] == {"by-hand": "kept"}
    assert updated.metadata.generation == 2


def test_server_side_apply_merges_containers_by_name(api: client.ApiClient, namespace: str) -> None:
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    dynamic.server_side_apply(
        resource, body=deployment("web"), namespace=namespace, field_manager="a", force_conflicts=True
    )
    sidecar = deployment("web")
    sidecar["spec"]["template"]["spec"]["containers"] = [
        {"name": "sidecar", "image": "registry.k8s.io/pause:3.9"}
    ]

    merged = dynamic.server_side_apply(
        resource, body=sidecar, namespace=namespace, field_manager="b", force_conflicts=True
    )

    assert [c.name for c in merged.spec.template.spec.containers] == ["main", "sidecar"]


# ---------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a"}),
        ("tier==web,env!=prod", {"a"}),
        ("tier in (web,db)", {"a", "b"}),
        ("tier notin (web)", {"b", "c"}),
        ("env", {"b"}),
        ("!env", {"a", "c"}),
    ],
)
def test_label_selectors(api: client.ApiClient, namespace: str, selector: str, expected: set[str]) -> None:
    core = client.CoreV1Api(api)
    for name, labels in {"a": {"tier": "web"}, "b": {"tier": "db", "env": "prod"}, "c": {}}.items():
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"set": "s", **labels}}}
        )

    found = {
        cm.metadata.name
        for cm in core.list_namespaced_config_map(namespace, label_selector=f"set=s,{selector}").items
    }

    assert found == expected


def test_field_selector_and_delete_collection(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name in ("one", "two"):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"doomed": "yes"}}}
        )

    assert [
        cm.metadata.name
        for cm in core.list_namespaced_config_map(namespace, field_selector="metadata.name=two").items
    ] == ["two"]
    core.delete_collection_namespaced_config_map(namespace, label_selector="doomed=yes")
    assert core.list_namespaced_config_map(namespace, label_selector="doomed").items == []


# ---------------------------------------------------------------- watches


def test_a_watch_sees_changes_after_its_resource_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    listed = core.list_namespaced_config_map(namespace)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "later", "labels": {"seen": "yes"}}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "unseen"}})

    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        label_selector="seen=yes",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    first = next(stream)

    assert (first["type"], first["object"].metadata.name) == ("ADDED", "later")
    stream.close()


def test_a_watch_without_resource_version_starts_with_current_objects_and_sees_deletion(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    deleter = threading.Timer(0.05, core.delete_namespaced_config_map, args=("cm", namespace))
    seen = []

    deleter.start()
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, field_selector="metadata.name=cm", timeout_seconds=5
    ):
        seen.append(event["type"])
        if event["type"] == "DELETED":
            break
    deleter.join()

    assert seen == ["ADDED", "DELETED"]


def test_a_watch_ends_at_its_timeout(api: client.ApiClient, namespace: str) -> None:
    started = time.monotonic()

    events = list(
        watch.Watch().stream(client.CoreV1Api(api).list_namespaced_secret, namespace, timeout_seconds=1)
    )

    assert events == []
    assert time.monotonic() - started < 3


# ---------------------------------------------------------------- namespaces


def test_a_deleted_namespace_terminates_then_goes(kube: KubeEnv, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    name = kube.unique("doomed")
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}})

    core.delete_namespace(name)
    terminating = core.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as again:
        core.create_namespace({"metadata": {"name": name}})
    assert status_of(again) == (409, "AlreadyExists")
    with pytest.raises(ApiException) as inside:
        core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert status_of(inside) == (403, "Forbidden")
    assert "being terminated" in inside.value.body

    for event in watch.Watch().stream(
        core.list_namespace, field_selector=f"metadata.name={name}", timeout_seconds=60
    ):
        if event["type"] == "DELETED":
            break
    else:
        pytest.fail("the namespace was never deleted")
    with pytest.raises(ApiException) as missing:
        core.read_namespace(name)
    assert missing.value.status == 404
