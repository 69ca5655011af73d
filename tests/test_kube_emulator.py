"""The emulated Kubernetes API, driven through the official client as previewbot drives a real cluster."""

from __future__ import annotations

import json
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
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}})
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
    first = core.create_namespaced_secret(namespace, {"metadata": {"name": "token"}, "stringData": {"k": "v"}})
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
    assert updated.to_dict()["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "10"}]
    assert updated.to_dict()["metadata"]["annotations"] == {"by-hand": "kept"}
    assert updated.metadata.generation == 2


def test_server_side_apply_merges_containers_by_name(api: client.ApiClient, namespace: str) -> None:
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    dynamic.server_side_apply(
        resource, body=deployment("web"), namespace=namespace, field_manager="a", force_conflicts=True
    )
    sidecar = deployment("web")
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "registry.k8s.io/pause:3.9"}]

    merged = dynamic.server_side_apply(
        resource, body=sidecar, namespace=namespace, field_manager="b", force_conflicts=True
    )

    assert [c.name for c in merged.spec.template.spec.containers] == ["main", "sidecar"]


def test_server_side_apply_records_its_manager_and_conflicts_unless_forced(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    dynamic = DynamicClient(api)
    resource = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"greeting": "hi"}}, field_manager="kubectl"
    )
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"greeting": "hello"}}

    with pytest.raises(ApiException) as clash:
        dynamic.server_side_apply(resource, body=body, namespace=namespace, field_manager="previewbot")
    assert status_of(clash) == (409, "Conflict")
    dynamic.server_side_apply(
        resource, body=body, namespace=namespace, field_manager="previewbot", force_conflicts=True
    )

    settings = core.read_namespaced_config_map("settings", namespace)
    assert settings.data == {"greeting": "hello"}
    assert [(entry.manager, entry.operation) for entry in settings.metadata.managed_fields] == [("previewbot", "Apply")]


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
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"set": "s", **labels}}})

    found = {
        cm.metadata.name for cm in core.list_namespaced_config_map(namespace, label_selector=f"set=s,{selector}").items
    }

    assert found == expected


def test_field_selector_and_delete_collection(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for name in ("one", "two"):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": {"doomed": "yes"}}})

    assert [
        cm.metadata.name for cm in core.list_namespaced_config_map(namespace, field_selector="metadata.name=two").items
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
    seen = []

    for event in watch.Watch().stream(
        core.list_namespaced_config_map, namespace, field_selector="metadata.name=cm", timeout_seconds=5
    ):
        seen.append(event["type"])
        if event["type"] == "ADDED":
            core.delete_namespaced_config_map("cm", namespace)
        if event["type"] == "DELETED":
            break

    assert seen == ["ADDED", "DELETED"]


def test_a_watch_ends_at_its_timeout(api: client.ApiClient, namespace: str) -> None:
    started = time.monotonic()

    events = list(watch.Watch().stream(client.CoreV1Api(api).list_namespaced_secret, namespace, timeout_seconds=1))

    assert events == []
    assert time.monotonic() - started < 3


def test_a_watch_from_a_compacted_resource_version_is_expired(
    emulated_kube: KubeEnv, api: client.ApiClient, namespace: str
) -> None:
    assert emulated_kube.server is not None
    core = client.CoreV1Api(api)
    old_version = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "newer"}})
    emulated_kube.server.compact()

    with pytest.raises(ApiException) as expired:
        next(
            watch.Watch().stream(
                core.list_namespaced_config_map, namespace, resource_version=old_version, timeout_seconds=5
            )
        )
    assert expired.value.status == 410


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

    # From the Terminating state's resourceVersion, so that a deletion already done is still seen.
    for event in watch.Watch().stream(
        core.list_namespace,
        field_selector=f"metadata.name={name}",
        resource_version=terminating.metadata.resource_version,
        timeout_seconds=60,
    ):
        if event["type"] == "DELETED":
            break
    else:
        pytest.fail("the namespace was never deleted")
    with pytest.raises(ApiException) as missing:
        core.read_namespace(name)
    assert missing.value.status == 404


# ---------------------------------------------------------------- workloads, kubelet and events


def watch_until(list_function: Any, namespace: str, name: str, done: Any, *, timeout: int = 60) -> Any:
    """Watch one object until done(obj) holds; the object, or a failed test at the timeout."""
    for event in watch.Watch().stream(
        list_function, namespace, field_selector=f"metadata.name={name}", timeout_seconds=timeout
    ):
        if event["type"] != "DELETED" and done(event["object"]):
            return event["object"]
    pytest.fail(f"{name} never reached the expected state")


def rolled_out(deployment: client.V1Deployment) -> bool:
    status, desired = deployment.status, deployment.spec.replicas
    return bool(
        status.observed_generation
        and status.observed_generation >= deployment.metadata.generation
        and status.updated_replicas == desired
        and status.available_replicas == desired
        and status.replicas == desired
    )


def job_finished(job: client.V1Job) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or [])


def app_pods(api: client.ApiClient, namespace: str, app: str) -> list[client.V1Pod]:
    return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def waiting_reason(pod: client.V1Pod) -> str | None:
    state = pod.status.container_statuses[0].state if pod.status.container_statuses else None
    return state.waiting.reason if state and state.waiting else None


def test_a_deployment_of_a_server_image_rolls_out_ready(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web"))

    ready = watch_until(apps.list_namespaced_deployment, namespace, "web", rolled_out)

    assert {c.type: c.status for c in ready.status.conditions} == {"Available": "True", "Progressing": "True"}
    [pod] = app_pods(api, namespace, "web")
    assert pod.status.phase == "Running"
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert "pod-template-hash" in pod.metadata.labels


def wait_for_pods(api: client.ApiClient, namespace: str, app: str, done: Any, *, timeout: int = 60) -> list[Any]:
    """List the app's pods until done(pods) holds, watching for the next change between two looks."""
    core = client.CoreV1Api(api)
    while True:
        listed = core.list_namespaced_pod(namespace, label_selector=f"app={app}")
        if done(listed.items):
            return list(listed.items)
        changes = watch.Watch().stream(
            core.list_namespaced_pod,
            namespace,
            label_selector=f"app={app}",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=timeout,
        )
        if next(changes, None) is None:
            pytest.fail(f"the pods of {app} never reached the expected state")
        changes.close()


def test_a_new_template_replaces_the_old_pods(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web"))
    watch_until(apps.list_namespaced_deployment, namespace, "web", rolled_out)
    [old_pod] = app_pods(api, namespace, "web")

    apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}
    )
    rolled = watch_until(apps.list_namespaced_deployment, namespace, "web", rolled_out)
    [new_pod] = wait_for_pods(
        api,
        namespace,
        "web",
        lambda pods: (
            [p.metadata.name for p in pods if p.metadata.name != old_pod.metadata.name]
            == [p.metadata.name for p in pods]
            and len(pods) == 1
        ),
    )

    assert rolled.metadata.generation == 2
    assert new_pod.metadata.labels["pod-template-hash"] != old_pod.metadata.labels["pod-template-hash"]


def test_an_unpullable_image_backs_off_with_warning_events(api: client.ApiClient, namespace: str) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("web", image="registry.invalid/app:1"))

    [pod] = wait_for_pods(api, namespace, "web", lambda pods: [waiting_reason(p) for p in pods] == ["ImagePullBackOff"])

    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
    )
    warnings = {(e.reason, e.type) for e in events.items if e.type == "Warning"}
    assert {("Failed", "Warning"), ("BackOff", "Warning")} <= warnings
    assert any("registry.invalid/app:1" in e.message for e in events.items if e.reason == "Failed")
    assert pod.status.phase == "Pending"
    with pytest.raises(ApiException) as not_started:
        client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, namespace)
    assert not_started.value.status == 400


def test_an_image_the_test_removed_cannot_be_pulled(
    emulated_kube: KubeEnv, api: client.ApiClient, namespace: str
) -> None:
    assert emulated_kube.kubelet is not None
    emulated_kube.kubelet.missing_images.add("example.com/gone:1")
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("web", image="example.com/gone:1"))

    wait_for_pods(api, namespace, "web", lambda pods: [waiting_reason(p) for p in pods] == ["ImagePullBackOff"])


def test_a_crashing_container_loops_with_its_log_readable(api: client.ApiClient, namespace: str) -> None:
    crashing = deployment(
        "web", image="busybox:1.36", command=["sh", "-c", "echo starting up\necho bad config >&2\nexit 3"]
    )
    client.AppsV1Api(api).create_namespaced_deployment(namespace, crashing)

    [pod] = wait_for_pods(
        api,
        namespace,
        "web",
        lambda pods: (
            [waiting_reason(p) for p in pods] == ["CrashLoopBackOff"]
            and pods[0].status.container_statuses[0].restart_count >= 1
        ),
    )

    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 3
    assert status.last_state.terminated.reason == "Error"
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, namespace, container="main", tail_lines=5)
    assert log == "starting up\nbad config\n"
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod.metadata.name}"
    )
    assert "BackOff" in {e.reason for e in events.items if e.type == "Warning"}


def job_running(name: str, script: str, *, backoff_limit: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "tests", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
                },
            },
        },
    }


def test_a_job_that_succeeds_completes_with_its_log(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    script = "echo running e2e\nsleep 1\nprintf '%s passed\\n' 3\ncat <<'EOF'\n<testsuite tests=\"3\"/>\nEOF\n"
    batch.create_namespaced_job(namespace, job_running("e2e", script))

    done = watch_until(batch.list_namespaced_job, namespace, "e2e", job_finished)

    assert [(c.type, c.status) for c in done.status.conditions if c.type in ("Complete", "Failed")] == [
        ("Complete", "True")
    ]
    assert done.status.succeeded == 1
    [pod] = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="job-name=e2e").items
    assert pod.status.phase == "Succeeded"
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, namespace)
    assert log == 'running e2e\n3 passed\n<testsuite tests="3"/>\n'


def test_a_job_that_fails_runs_out_of_retries(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, job_running("e2e", "echo 1 failed\nexit 1", backoff_limit=1))

    done = watch_until(batch.list_namespaced_job, namespace, "e2e", job_finished)

    failed = next(c for c in done.status.conditions if c.type == "Failed")
    assert (failed.status, failed.reason) == ("True", "BackoffLimitExceeded")
    assert done.status.failed == 2
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="job-name=e2e").items
    assert {p.status.phase for p in pods} == {"Failed"}
    assert client.CoreV1Api(api).read_namespaced_pod_log(pods[0].metadata.name, namespace) == "1 failed\n"


def test_a_job_past_its_active_deadline_fails(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    body = job_running("e2e", "sleep 600")
    body["spec"]["activeDeadlineSeconds"] = 2
    batch.create_namespaced_job(namespace, body)

    done = watch_until(batch.list_namespaced_job, namespace, "e2e", job_finished)

    assert [c.reason for c in done.status.conditions if c.type == "Failed"] == ["DeadlineExceeded"]


def test_a_missing_secret_is_a_container_config_error(api: client.ApiClient, namespace: str) -> None:
    body = deployment("web", env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "t"}}}])
    client.AppsV1Api(api).create_namespaced_deployment(namespace, body)

    [pod] = wait_for_pods(
        api, namespace, "web", lambda pods: [waiting_reason(p) for p in pods] == ["CreateContainerConfigError"]
    )

    assert 'secret "absent" not found' in pod.status.container_statuses[0].state.waiting.message


def test_stateful_sets_and_daemon_sets_become_ready(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    stateful = deployment("db")
    stateful.update(kind="StatefulSet")
    stateful["spec"].update(replicas=2, serviceName="db")
    daemon = deployment("agent")
    daemon.update(kind="DaemonSet")
    del daemon["spec"]["replicas"]
    apps.create_namespaced_stateful_set(namespace, stateful)
    apps.create_namespaced_daemon_set(namespace, daemon)

    ready_set = watch_until(
        apps.list_namespaced_stateful_set,
        namespace,
        "db",
        lambda s: s.status.ready_replicas == 2 and s.status.current_revision == s.status.update_revision,
    )
    ready_daemons = watch_until(
        apps.list_namespaced_daemon_set,
        namespace,
        "agent",
        lambda d: d.status.number_ready == d.status.desired_number_scheduled >= 1,
    )

    assert ready_set.status.observed_generation == 1
    assert ready_daemons.status.updated_number_scheduled == ready_daemons.status.desired_number_scheduled
    assert sorted(p.metadata.name for p in app_pods(api, namespace, "db")) == ["db-0", "db-1"]


def test_deleting_a_deployment_deletes_its_pods(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web"))
    watch_until(apps.list_namespaced_deployment, namespace, "web", rolled_out)

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    assert wait_for_pods(api, namespace, "web", lambda pods: pods == []) == []
