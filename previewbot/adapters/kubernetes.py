"""previewbot's Cluster port over the official kubernetes client.

Reads and writes are plain REST calls through the client's ApiClient, so every object is a dict in
the API's own (camelCase) shape whatever its kind, and none of the client's typed API and model
classes (about half a second of imports) is ever loaded. Where a kind is served comes from a table
of the built-in kinds; only another kind asks the cluster's discovery, once per API group version
and run. Independent objects are applied in parallel; waiting goes through watches. Every SDK or
transport exception is turned into a previewbot.errors exception in one place, `_translated`, and
temporary ones are retried there with backoff.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import tenacity
import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from previewbot import errors, naming, rbac, yamlfast
from previewbot.core.ports import Progress
from previewbot.model import (
    ContainerProblem,
    Endpoint,
    EndpointKind,
    JobOutcome,
    NamespaceInfo,
    ObjectRef,
    Readiness,
    RolloutResult,
    WorkloadDiagnosis,
    WorkloadState,
)
from previewbot.redact import redactor

log = logging.getLogger(__name__)

T = TypeVar("T")
Obj = dict[str, Any]

# Waiting reasons that no amount of waiting heals. Pull failures are given a grace first,
# because a registry hiccup or a slow push of the PR's image resolves itself.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff"})
NEVER_STARTS = frozenset({"CreateContainerConfigError", "InvalidImageName", "CreateContainerError"})
CRASHING = frozenset({"CrashLoopBackOff"})

SCALABLE_KINDS = ("Deployment", "StatefulSet")
"""The workloads a sleeping preview scales to zero: the others either run to completion or run per node."""

BACKGROUND = "Background"
LOG_TAIL_LINES = 40
MAX_EVENTS = 20
JOB_LOG_LIMIT = 1 << 20
EVENT_CLOCK_SKEW = timedelta(seconds=5)
"""How far the API server's clock may run behind previewbot's when events are told old from new."""
REQUEST_TIMEOUT = (10.0, 30.0)  # seconds to connect, seconds to wait for an answer; watches set their own
APPLY_PARALLELISM = 8  # objects applied at once; the connection pool holds as many, and a watch besides
# How long one watch request of a rollout wait lasts: its looks at the pods meanwhile need no request of
# their own. Where a stream cannot be shut down (a TLS proxy in between), the end of a wait waits for it.
ROLLOUT_WATCH_SECONDS = 60
# How soon a wait notices the Event that stops it: a look at the Event in this process, no request.
STOP_CHECK_SECONDS = 0.05
# A wait for a Lease to run out ends this much after it did: the take that follows then finds it run out.
LEASE_RUN_OUT_MARGIN = 0.05
JSON = "application/json"


class KubeconfigError(errors.UserError):
    """The kubeconfig previewbot was given cannot be used. The message never quotes its content."""


# ---------------------------------------------------------------- errors, at one boundary

_ERROR_BY_STATUS: dict[int, type[errors.ApiError]] = {
    400: errors.Invalid,
    401: errors.Forbidden,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    422: errors.Invalid,
}


def _status_message(exc: ApiException) -> str:
    """The message of the API's Status object, which names the object and the reason."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    try:
        status = yamlfast.load(body) if body else None
    except yaml.YAMLError:
        status = None
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return f"{exc.status} {exc.reason}".strip()


def _retry_after(exc: ApiException) -> float:
    value = (exc.headers or {}).get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


# How the API server words each kind of refusal (RBAC, admission plugins, webhooks, policies).
_RBAC_REFUSAL = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)" in API group "(?P<group>[^"]*)"'
    r'(?: in the namespace "(?P<namespace>[^"]*)"| (?P<cluster>at the cluster scope))?'
)
RBAC_HINT = "`previewbot rbac` prints the permissions previewbot needs"


def named_refusal(message: str) -> str | None:
    """What refused a request, named, with the API's own words; None when the message names no refusal."""
    if found := _RBAC_REFUSAL.search(message):
        resource = found["resource"] + (f".{found['group']}" if found["group"] else "")
        # A namespace's own name stands as its namespace in the message; it is granted cluster-wide all the same.
        where = "cluster-wide" if found["resource"] == "namespaces" or not found["namespace"] else ""
        where = where or f"in namespace {found['namespace']}"
        return f"forbidden by RBAC: {found['user']} may not {found['verb']} {resource} {where} ({RBAC_HINT}): {message}"
    if "is attempting to grant RBAC permissions not currently held" in message:
        return f"forbidden by RBAC: previewbot may not bind the preview ClusterRole ({RBAC_HINT}): {message}"
    if "exceeded quota" in message:
        return f"refused by a ResourceQuota: {message}"
    if "violates PodSecurity" in message:
        return f"refused by Pod Security admission: {message}"
    if "admission webhook" in message and "denied the request" in message:
        return f"refused by an admission webhook: {message}"
    if "ValidatingAdmissionPolicy" in message and "denied request" in message:
        return f"refused by a ValidatingAdmissionPolicy: {message}"
    return None


def _api_error(exc: ApiException) -> errors.ApiError:
    status = int(exc.status or 0)
    message = _status_message(exc)
    if status in (400, 403, 422):
        message = named_refusal(message) or message
    if status == 429 or status >= 500:
        return errors.TemporaryError(message, status=status, delay=_retry_after(exc))
    return _ERROR_BY_STATUS.get(status, errors.ApiError)(message, status=status)


def _translated(operation: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    try:
        return operation(*args, **kwargs)
    except ApiException as exc:
        raise _api_error(exc) from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise errors.TemporaryError(f"the Kubernetes API did not answer in time: {exc}", delay=0.0) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise errors.TemporaryError(f"cannot reach the Kubernetes API: {exc}", delay=0.0) from exc


class _BoundedApiClient(k8s.ApiClient):
    """An ApiClient whose every request, discovery included, gives up after `request_timeout`.

    The client's own default is to wait forever for an API server that accepted the connection
    and never answers. previewbot retries by itself, so urllib3 does not.
    """

    def __init__(self, configuration: k8s.Configuration, *, request_timeout: tuple[float, float]) -> None:
        configuration.retries = False
        super().__init__(configuration)
        self.request_timeout = request_timeout

    def call_api(
        self,
        method: Any,
        url: Any,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        return super().call_api(
            method, url, header_params, body, post_params, _request_timeout=_request_timeout or self.request_timeout
        )


# ---------------------------------------------------------------- connecting


_WARNING = re.compile(r'\s*\d{3}\s+\S+\s+"(?P<text>(?:[^"\\]|\\.)*)"')


def _warnings_of(headers: Any) -> list[str]:
    """The texts of a response's Warning headers (RFC 7234: `299 - "text"`), as the API server sends them."""
    texts = []
    for value in headers.getlist("Warning") if headers is not None else []:
        found = _WARNING.match(value)
        texts.append(re.sub(r"\\(.)", r"\1", found["text"]) if found else value)
    return texts


def connect(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
    rbac_name: str | None = None,
) -> KubernetesCluster:
    """A cluster from a kubeconfig path or text, else KUBECONFIG, else the pod's service account.

    Every request gives up after request_timeout: (seconds to connect, seconds to wait for the answer).
    `rbac_name` is the NAME of the RBAC a platform team applied (`previewbot rbac --name`), previewbot's
    by default.
    """
    configuration = k8s.Configuration()
    try:
        if kubeconfig and is_kubeconfig_text(kubeconfig):
            k8s_config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                _parse_kubeconfig(kubeconfig),
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif kubeconfig or os.environ.get("KUBECONFIG"):
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig or os.environ["KUBECONFIG"],
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise KubeconfigError(f"cannot use the kubeconfig: {exc}") from None
    except OSError as exc:
        raise KubeconfigError(f"cannot read the kubeconfig file: {exc.strerror}") from None
    return _cluster(configuration, request_timeout=request_timeout, rbac_name=rbac_name)


def unreachable() -> KubernetesCluster:
    """A Cluster port with no cluster behind it, for a front door that must hold no kubeconfig (the
    Action's gate asks only GitHub): any call fails, as a name under .invalid never resolves."""
    configuration = k8s.Configuration()
    configuration.host = "https://cluster.invalid"
    return _cluster(configuration, request_timeout=REQUEST_TIMEOUT)


def _cluster(
    configuration: k8s.Configuration, *, request_timeout: tuple[float, float], rbac_name: str | None = None
) -> KubernetesCluster:
    # One pool for the run, with a connection for each object applied at once and for a watch.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, APPLY_PARALLELISM + 2)
    return KubernetesCluster(
        _BoundedApiClient(configuration, request_timeout=request_timeout),
        connect_timeout=request_timeout[0],
        read_timeout=request_timeout[1],
        rbac_name=rbac_name,
    )


def is_kubeconfig_text(kubeconfig: str) -> bool:
    """Whether `kubeconfig` is a kubeconfig's text rather than a file's path.

    The Action passes the secret's text itself: text has a line break or is a JSON document. A
    one-line JSON kubeconfig is longer than a file name may be, so it must never be tried as a path.
    """
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith("{")


def read_kubeconfig(kubeconfig: str) -> dict[str, Any]:
    """The kubeconfig document, from its text or its file. Errors never quote it: it holds credentials."""
    if is_kubeconfig_text(kubeconfig):
        return _parse_kubeconfig(kubeconfig)
    try:
        return _parse_kubeconfig(Path(kubeconfig).read_text())
    except OSError as exc:
        raise KubeconfigError(f"cannot read the kubeconfig file: {exc.strerror}") from None


def _parse_kubeconfig(text: str) -> dict[str, Any]:
    # A YAML error quotes the offending line, which may hold a token: say only where it is.
    try:
        document = yamlfast.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"the kubeconfig text is not valid YAML{where}") from None
    if not isinstance(document, dict):
        raise KubeconfigError("the kubeconfig text is not a kubeconfig document")
    return document


# ---------------------------------------------------------------- where each kind is served


@dataclass(frozen=True, slots=True)
class Kind:
    """Where the API serves a kind: what discovery would say, known ahead for the built-in kinds."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{quote(namespace, safe='')}" if self.namespaced and namespace else ""
        rest = "".join(f"/{quote(part, safe='')}" for part in (name, subresource) if part)
        return f"{root}{scope}/{self.plural}{rest}"


def _kinds(api_version: str, *entries: tuple[str, str, bool]) -> dict[tuple[str, str], Kind]:
    return {(api_version, kind): Kind(api_version, plural, namespaced) for kind, plural, namespaced in entries}


# Served alike by every Kubernetes release previewbot supports: no discovery needed to reach them.
BUILT_IN_KINDS: Mapping[tuple[str, str], Kind] = {
    **_kinds(
        "v1",
        ("Namespace", "namespaces", False),
        ("Node", "nodes", False),
        ("PersistentVolume", "persistentvolumes", False),
        ("ConfigMap", "configmaps", True),
        ("Endpoints", "endpoints", True),
        ("Event", "events", True),
        ("LimitRange", "limitranges", True),
        ("PersistentVolumeClaim", "persistentvolumeclaims", True),
        ("Pod", "pods", True),
        ("ReplicationController", "replicationcontrollers", True),
        ("ResourceQuota", "resourcequotas", True),
        ("Secret", "secrets", True),
        ("Service", "services", True),
        ("ServiceAccount", "serviceaccounts", True),
    ),
    **_kinds(
        "apps/v1",
        ("ControllerRevision", "controllerrevisions", True),
        ("DaemonSet", "daemonsets", True),
        ("Deployment", "deployments", True),
        ("ReplicaSet", "replicasets", True),
        ("StatefulSet", "statefulsets", True),
    ),
    **_kinds("batch/v1", ("CronJob", "cronjobs", True), ("Job", "jobs", True)),
    **_kinds("autoscaling/v1", ("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)),
    **_kinds("autoscaling/v2", ("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)),
    **_kinds("coordination.k8s.io/v1", ("Lease", "leases", True)),
    **_kinds("discovery.k8s.io/v1", ("EndpointSlice", "endpointslices", True)),
    **_kinds("events.k8s.io/v1", ("Event", "events", True)),
    **_kinds(
        "networking.k8s.io/v1",
        ("IngressClass", "ingressclasses", False),
        ("Ingress", "ingresses", True),
        ("NetworkPolicy", "networkpolicies", True),
    ),
    **_kinds("policy/v1", ("PodDisruptionBudget", "poddisruptionbudgets", True)),
    **_kinds(
        "rbac.authorization.k8s.io/v1",
        ("ClusterRole", "clusterroles", False),
        ("ClusterRoleBinding", "clusterrolebindings", False),
        ("Role", "roles", True),
        ("RoleBinding", "rolebindings", True),
    ),
    **_kinds("scheduling.k8s.io/v1", ("PriorityClass", "priorityclasses", False)),
    **_kinds("storage.k8s.io/v1", ("StorageClass", "storageclasses", False)),
    **_kinds("apiextensions.k8s.io/v1", ("CustomResourceDefinition", "customresourcedefinitions", False)),
}

# What workloads may need to exist when their pods start: applied before everything else.
PREREQUISITE_KINDS = frozenset(
    {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    }
)
NAMESPACE = BUILT_IN_KINDS[("v1", "Namespace")]
POD = BUILT_IN_KINDS[("v1", "Pod")]
JOB = BUILT_IN_KINDS[("batch/v1", "Job")]


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """A streamed response's lines, each as soon as it has come whole."""
    pending = bytearray()
    for chunk in response.stream(None, decode_content=True):
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            if line.strip():
                yield line


@dataclass(slots=True)
class _View:
    """What a watch has shown so far: each object by name, and whether this wakeup found nothing new."""

    objects: dict[str, Obj] = field(default_factory=dict)
    quiet: bool = False


class _Interrupt:
    """Ends a watch from another thread at once: the stream it reads is shut down, and no other is opened."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._lock = threading.Lock()
        self._stream: urllib3.HTTPResponse | None = None

    def reading(self, stream: urllib3.HTTPResponse) -> bool:
        """Hold on to the stream about to be read; False when the watch was interrupted already."""
        with self._lock:
            self._stream = None if self.requested.is_set() else stream
            return self._stream is not None

    def done_reading(self) -> bool:
        """Let go of the stream; whether it is whole, and so may serve another request."""
        with self._lock:
            self._stream = None
            return not self.requested.is_set()

    def __call__(self) -> None:
        with self._lock:
            self.requested.set()
            if self._stream is not None:
                # Wakes the read waiting on it, on whichever thread. A stream that ended already, or
                # cannot be shut down, says so: its reader then stops when its read ends.
                with contextlib.suppress(ValueError, RuntimeError):
                    self._stream.shutdown()


class _Feed:
    """A watch read on a thread of its own, so that what waits on it can also be woken from here, at once.

    `views` is called on that thread with `stop` and `interrupt` (as `_wakeups` takes them).
    `objects` is the newest the watch has shown (None until its list came); `next` waits for
    the watch to show more, for `wake`, or for its timeout. Leaving interrupts the watch and joins
    its thread.
    """

    def __init__(self, views: Callable[..., Iterator[_View]], *, name: str) -> None:
        self.objects: dict[str, Obj] | None = None
        self._shown: queue.SimpleQueue[dict[str, Obj] | Exception | None] = queue.SimpleQueue()
        self._interrupt = _Interrupt()
        self._thread = threading.Thread(target=self._read, args=(views,), name=name, daemon=True)

    def __enter__(self) -> _Feed:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._interrupt()
        self._thread.join()

    def wake(self, *_: object) -> None:
        self._shown.put(None)

    def next(self, *, timeout: float) -> None:
        """Take all the watch has shown since, after waiting for something at most `timeout` seconds."""
        try:
            shown = self._shown.get(timeout=max(timeout, 0.0))
            while True:
                if isinstance(shown, Exception):
                    raise shown
                if shown is not None:
                    self.objects = shown
                shown = self._shown.get_nowait()
        except queue.Empty:
            return

    def _read(self, views: Callable[..., Iterator[_View]]) -> None:
        try:
            for view in views(stop=self._interrupt.requested, interrupt=self._interrupt):
                if not view.quiet:
                    self._shown.put(dict(view.objects))
        except Exception as error:  # the waiting thread raises it: this one only reads
            self._shown.put(error)


@contextlib.contextmanager
def _on_set(event: threading.Event | None, act: Callable[[], object]) -> Iterator[None]:
    """Within the block, `act` is called once, within STOP_CHECK_SECONDS of `event` being set.

    An Event calls nobody back: a thread looks at it, which sends nothing anywhere.
    """
    if event is None:
        yield
        return
    ended = threading.Event()

    def look() -> None:
        while not event.is_set():
            if ended.wait(STOP_CHECK_SECONDS):
                return
        act()

    looker = threading.Thread(target=look, name="previewbot-stop", daemon=True)
    looker.start()
    try:
        yield
    finally:
        ended.set()
        looker.join()


# ---------------------------------------------------------------- reading objects


def _ref_key(ref: ObjectRef) -> tuple[str, str, str]:
    """What identifies an object within a namespace: its API group (not version), kind and name."""
    return ref.api_version.rpartition("/")[0], ref.kind, ref.name


def _metadata(obj: Mapping[str, Any]) -> Obj:
    return dict(obj.get("metadata") or {})


def _timestamp(text: str | None) -> datetime:
    return datetime.fromisoformat(text) if text else datetime.min.replace(tzinfo=UTC)


def _created(obj: Obj) -> datetime:
    return _timestamp(_metadata(obj).get("creationTimestamp"))


def _namespace_info(obj: Obj) -> NamespaceInfo:
    metadata = _metadata(obj)
    phase = (obj.get("status") or {}).get("phase")
    return NamespaceInfo(
        name=metadata["name"],
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        terminating=phase == "Terminating" or bool(metadata.get("deletionTimestamp")),
    )


def _selector_text(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector object as the query string the list calls take."""
    if not selector:
        return ""
    parts = [f"{key}={value}" for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or ()
        parts.append(
            {
                "In": f"{key} in ({','.join(values)})",
                "NotIn": f"{key} notin ({','.join(values)})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(parts)


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector object selects an object with these labels, as the API server decides."""
    if not selector:
        return False  # a workload without a selector owns no pods
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, values = expression["key"], expression.get("values") or ()
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[expression["operator"]]
        if not holds:
            return False
    return True


def _pods_selected(pods: Sequence[Obj], workload: Obj | None) -> list[Obj]:
    """Of the namespace's pods, the workload's, oldest first."""
    selector = ((workload or {}).get("spec") or {}).get("selector")
    return sorted((pod for pod in pods if _selects(selector, _metadata(pod).get("labels") or {})), key=_created)


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


POD_TEMPLATE_HASH = "pod-template-hash"
"""The label a Deployment's controller gives each ReplicaSet and its pods, telling its revisions apart."""


def _revision(replica_set: Obj) -> int:
    revision = (_metadata(replica_set).get("annotations") or {}).get("deployment.kubernetes.io/revision", "")
    return int(revision) if revision.isdigit() else 0


def _is_owned_by(obj: Obj, owner_uid: str) -> bool:
    return any(owner.get("uid") == owner_uid for owner in _metadata(obj).get("ownerReferences") or ())


# ---------------------------------------------------------------- rollout rules


@dataclass(frozen=True, slots=True)
class _Rollout:
    """Where a workload stands under `kubectl rollout status` rules."""

    done: bool
    note: str  # "1/2 ready"
    failed: str | None = None  # why it will not get there however long previewbot waits
    ready: int = 0  # pods ready (a Job's: succeeded)
    desired: int = 0


def _conditions(status: Mapping[str, Any]) -> dict[str, Obj]:
    return {c["type"]: c for c in status.get("conditions") or () if c.get("type")}


def _generation_seen(obj: Obj) -> bool:
    observed = (obj.get("status") or {}).get("observedGeneration") or 0
    return bool(observed) and observed >= (_metadata(obj).get("generation") or 0)


def _deployment_rollout(obj: Obj) -> _Rollout:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas", 1)
    available = status.get("availableReplicas") or 0
    note = f"{available}/{desired} ready"
    counts = {"ready": available, "desired": desired}
    conditions = _conditions(status)
    replica_failure = conditions.get("ReplicaFailure", {})
    if replica_failure.get("status") == "True" and _generation_seen(obj):
        refused = _refusal_of_pods(replica_failure.get("message") or "FailedCreate")
        return _Rollout(False, note, failed=refused, **counts)
    progressing = conditions.get("Progressing", {})
    # As kubectl does, the deadline counts only once the controller has seen the current spec: a
    # condition left from before an apply says nothing of the rollout the apply began.
    if progressing.get("reason") == "ProgressDeadlineExceeded" and _generation_seen(obj):
        return _Rollout(False, note, failed=progressing.get("message") or "progress deadline exceeded", **counts)
    done = (
        _generation_seen(obj)
        and (status.get("updatedReplicas") or 0) == desired
        and (status.get("replicas") or 0) == desired
        and available == desired
    )
    return _Rollout(done, note, **counts)


def _refusal_of_pods(message: str) -> str:
    """Why a controller could not create the pods (quota, Pod Security, admission), as the headline."""
    message = message.removeprefix("(combined from similar events): ").removeprefix("Error creating: ")
    return "its pods were " + (named_refusal(message) or f"refused: {message}")


def _stateful_set_rollout(obj: Obj) -> _Rollout:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas", 1)
    ready = status.get("readyReplicas") or 0
    partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0
    revisions = status.get("currentRevision"), status.get("updateRevision")
    done = (
        _generation_seen(obj)
        and ready >= desired
        and (status.get("updatedReplicas") or 0) >= desired - partition
        and (partition > 0 or None in revisions or revisions[0] == revisions[1])
    )
    return _Rollout(done, f"{ready}/{desired} ready", ready=ready, desired=desired)


def _daemon_set_rollout(obj: Obj) -> _Rollout:
    status = obj.get("status") or {}
    desired = status.get("desiredNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    done = _generation_seen(obj) and (status.get("updatedNumberScheduled") or 0) == desired and available == desired
    return _Rollout(done, f"{available}/{desired} ready", ready=available, desired=desired)


def _job_rollout(obj: Obj) -> _Rollout:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = _conditions(status)
    succeeded, completions = status.get("succeeded") or 0, spec.get("completions") or 1
    note = f"{succeeded}/{completions} succeeded"
    failed = conditions.get("Failed", {})
    if failed.get("status") == "True":
        why = failed.get("message") or failed.get("reason") or "the Job failed"
        return _Rollout(False, note, failed=why, ready=succeeded, desired=completions)
    done = conditions.get("Complete", {}).get("status") == "True"
    return _Rollout(done, note, ready=succeeded, desired=completions)


def _deadline_exceeded(job: Obj) -> bool:
    return _conditions(job.get("status") or {}).get("Failed", {}).get("reason") == "DeadlineExceeded"


_ROLLOUT_RULES: dict[str, Callable[[Obj], _Rollout]] = {
    "Deployment": _deployment_rollout,
    "StatefulSet": _stateful_set_rollout,
    "DaemonSet": _daemon_set_rollout,
    "Job": _job_rollout,
}


def _rollout(kind: str, obj: Obj | None) -> _Rollout:
    if obj is None:
        return _Rollout(False, "missing", failed="it does not exist")
    return _ROLLOUT_RULES[kind](obj)


# ---------------------------------------------------------------- pods


@dataclass(frozen=True, slots=True)
class _Stuck:
    """A container that is not ready, and why."""

    pod: str
    container: str
    reason: str
    message: str
    restarts: int
    crashed_before: bool  # its previous run's log is the telling one

    def __str__(self) -> str:
        where = f"container {self.container} of pod {self.pod}" if self.container else f"pod {self.pod}"
        return f"{where}: {self.reason}"


def _stuck_containers(pod: Obj) -> list[_Stuck]:
    """The pod's containers that are not ready; a pod that cannot be scheduled counts as one."""
    status = pod.get("status") or {}
    name = _metadata(pod)["name"]
    if status.get("phase") == "Succeeded":
        return []
    statuses = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    if not statuses:
        scheduled = _conditions(status).get("PodScheduled", {})
        if scheduled.get("status") == "False":
            return [
                _Stuck(
                    name,
                    "",
                    scheduled.get("reason") or "Unschedulable",
                    scheduled.get("message", ""),
                    0,
                    False,
                )
            ]
        return []
    init_names = {s.get("name") for s in status.get("initContainerStatuses") or ()}
    stuck = []
    for container in statuses:
        state, last = container.get("state") or {}, (container.get("lastState") or {}).get("terminated")
        terminated = state.get("terminated")
        if container.get("ready") or (
            container.get("name") in init_names and terminated and not terminated.get("exitCode")
        ):
            continue
        if waiting := state.get("waiting"):
            reason, message = waiting.get("reason") or "Waiting", waiting.get("message") or ""
        elif terminated:
            reason = terminated.get("reason") or "Terminated"
            message = terminated.get("message") or f"exit code {terminated.get('exitCode')}"
        elif last:
            reason = last.get("reason") or "Terminated"
            message = last.get("message") or f"exit code {last.get('exitCode')}, restarted"
        else:
            reason, message = "NotReady", "running, but its readiness probe does not pass"
        stuck.append(
            _Stuck(
                name,
                container.get("name", ""),
                reason,
                message,
                container.get("restartCount") or 0,
                crashed_before=bool(state.get("waiting") and last),
            )
        )
    return stuck


class _HopelessPods:
    """Tells when a workload's pods show a reason that waiting will not heal.

    A pull failure counts only once it has lasted `pull_grace` seconds, so it keeps the
    time each container was first seen failing to pull. `failing_pull` is the pull failure
    the pods showed when last seen: a Job that ends meanwhile (its deadline) never ran.
    """

    def __init__(self, *, hopeless: frozenset[str], pull_grace: float) -> None:
        self._hopeless = hopeless
        self._pull_grace = pull_grace
        self._pull_failing_since: dict[tuple[str, str], float] = {}
        self.failing_pull: _Stuck | None = None

    def verdict(self, pods: Sequence[Obj]) -> _Stuck | None:
        now = time.monotonic()
        if pods:
            self.failing_pull = None  # pods deleted with their Job leave the last sighting standing
        for pod in pods:
            for stuck in _stuck_containers(pod):
                if stuck.reason in self._hopeless:
                    return stuck
                if stuck.reason in PULL_FAILURES:
                    self.failing_pull = stuck
                    since = self._pull_failing_since.setdefault((stuck.pod, stuck.container), now)
                    if now - since >= self._pull_grace:
                        return stuck
        return None


def _event_line(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    about = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    return f"{event.get('type')} {event.get('reason')} {about}: {str(event.get('message') or '').strip()}"


def _event_time(event: Obj) -> datetime:
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _metadata(event).get("creationTimestamp")
    )
    return _timestamp(stamp)


def _newest_unique(lines_by_time: Sequence[tuple[datetime, str]], *, limit: int) -> tuple[str, ...]:
    """The lines oldest first, each once (at its latest time), keeping only the newest `limit`."""
    latest: dict[str, datetime] = {}
    for when, line in lines_by_time:
        latest[line] = max(when, latest.get(line, when))
    ordered = sorted(latest, key=lambda line: latest[line])
    return tuple(ordered[-limit:])


# ---------------------------------------------------------------- the adapter


class KubernetesCluster:
    """The Cluster port on one cluster.

    `recheck_interval` bounds how long a wait goes without looking at the pods (watches wake
    it sooner); `image_pull_grace` is how long a pull failure may last before a rollout or a
    Job is given up on. Temporary API errors are tried `retry_attempts` times in all, waiting
    `retry_wait` seconds doubled each time, or the API's Retry-After, at most `retry_max_wait`.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        recheck_interval: float = 2.0,
        image_pull_grace: float = 30.0,
        retry_attempts: int = 4,
        retry_wait: float = 0.5,
        retry_max_wait: float = 10.0,
        connect_timeout: float = 10.0,
        read_timeout: float = REQUEST_TIMEOUT[1],
        apply_parallelism: int = APPLY_PARALLELISM,
        rbac_name: str | None = None,
    ) -> None:
        self._api = api_client
        self._rbac_name = rbac_name or rbac.rules().name
        self._discovered: dict[str, list[Obj]] = {}  # API group version -> the resources it serves
        self._discovery_lock = threading.Lock()
        # The Lease as this client last wrote it, by (namespace, name): a release needs no read first.
        self._leases_written: dict[tuple[str, str], Obj] = {}
        # The Lease as take_lease last found another holding it: the wait for it watches from there.
        self._leases_held_by_others: dict[tuple[str, str], Obj] = {}
        self._namespaces_made: set[str] = set()  # by this client, and no Lease taken in them yet
        # Each namespace's resourceVersion as this client last wrote it: following it needs no list first.
        self._namespace_versions: dict[str, str | None] = {}
        # By namespace, each workload's metadata.generation as the last apply left it, until the rollout wait
        # after it takes them: a wait begun before the apply ended judges no older object.
        self._applied_generations: dict[str, dict[tuple[str, str, str], int]] = {}
        self._applied_generations_lock = threading.Lock()
        self._apply_parallelism = apply_parallelism
        self._read_timeout = read_timeout
        self._recheck_interval = recheck_interval
        self._image_pull_grace = image_pull_grace
        self._retry_attempts = retry_attempts
        self._retry_wait = retry_wait
        self._retry_max_wait = retry_max_wait
        self._connect_timeout = connect_timeout

    # -------------------------------------------------------- plumbing

    def _call(self, operation: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(errors.TemporaryError),
            stop=tenacity.stop_after_attempt(self._retry_attempts),
            wait=self._backoff,
            before_sleep=lambda state: log.debug("Kubernetes API: retrying after %s", state.outcome),
            reraise=True,
        )
        result: T = retrying(_translated, operation, *args, **kwargs)
        return result

    def _backoff(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hinted = error.delay if isinstance(error, errors.TemporaryError) else 0.0
        doubled = self._retry_wait * 2.0 ** (state.attempt_number - 1)
        return min(max(hinted, doubled), self._retry_max_wait)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int | None] | None = None,
        body: Any = None,
        content_type: str = JSON,
        stream: bool = False,
        read_timeout: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Any:
        """One call to the API: its JSON answer decoded (text when it is not JSON), or the open response to stream.

        Raises ApiException for any answer but 2xx, as the client's typed APIs do. `warn` hears the
        warnings the API server sends back (deprecated APIs, Pod Security).
        """
        params = [(key, str(value)) for key, value in (query or {}).items() if value is not None]
        method, url, headers, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params={"Accept": JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method,
            url,
            header_params=headers,
            body=body,
            _request_timeout=(self._connect_timeout, read_timeout or self._read_timeout),
        )
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if warn is not None:
            for warning in _warnings_of(response.response.headers):
                warn(warning)
        if stream:
            return response.response
        data = response.read()  # type: ignore[no-untyped-call]
        if JSON in (response.headers.get("Content-Type") or ""):
            return json.loads(data)
        return data.decode(errors="replace")

    def _resource(self, api_version: str, kind: str) -> Kind:
        """Where the cluster serves a kind; NotFound when it does not."""
        known = BUILT_IN_KINDS.get((api_version, kind))
        if known is not None:
            return known
        for resource in self._discover(api_version):
            if resource.get("kind") == kind and "/" not in str(resource.get("name", "")):
                return Kind(api_version, str(resource["name"]), bool(resource.get("namespaced")))
        raise errors.NotFound(
            f"the cluster serves no kind {kind} in {api_version}; it serves {self._served_api_versions}",
            status=404,
        )

    @functools.cached_property
    def _served_api_versions(self) -> str:
        """Every API version the cluster serves, for the message of a kind it does not: asked once per run."""
        groups = self._call(self._request, "GET", "/apis").get("groups") or []
        return ", ".join(
            ["v1", *(version["groupVersion"] for group in groups for version in group.get("versions") or ())]
        )

    def _discover(self, api_version: str) -> list[Obj]:
        """The resources of one API group version, asked once per run."""
        with self._discovery_lock:
            if api_version not in self._discovered:
                root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                try:
                    listing = self._call(self._request, "GET", root)
                except errors.NotFound:
                    listing = {}
                self._discovered[api_version] = list(listing.get("resources") or [])
            return self._discovered[api_version]

    def _get(self, namespace: str | None, ref: ObjectRef) -> Obj | None:
        try:
            found: Obj = self._call(
                self._request, "GET", self._resource(ref.api_version, ref.kind).path(namespace, ref.name)
            )
        except errors.NotFound:
            return None
        return found

    def _list(
        self, api_version: str, kind: str, *, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> list[Obj]:
        kind_served = self._resource(api_version, kind)
        found = self._list_of(kind_served, namespace, label_selector=label_selector, field_selector=field_selector)
        return list(found["items"])

    def _list_of(self, kind: Kind, namespace: str | None, *, label_selector: str = "", field_selector: str = "") -> Obj:
        """The list answer itself: its items (never None) and its resourceVersion, to watch from."""
        found: Obj = self._call(
            self._request,
            "GET",
            kind.path(namespace),
            query={"labelSelector": label_selector or None, "fieldSelector": field_selector or None},
        )
        found["items"] = found.get("items") or []
        return found

    def _delete(self, namespace: str, ref: ObjectRef) -> bool:
        """Delete the object and its dependents; False when it was already gone."""
        try:
            self._call(
                self._request,
                "DELETE",
                self._resource(ref.api_version, ref.kind).path(namespace, ref.name),
                query={"propagationPolicy": BACKGROUND},
            )
        except errors.NotFound:
            return False
        return True

    def _wakeups(
        self,
        kind: Kind,
        *,
        deadline: float,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        stop: threading.Event | None = None,
        watch_seconds: float | None = None,
        interrupt: _Interrupt | None = None,
        since: str | None = None,
        relist: bool = True,
    ) -> Iterator[_View]:
        """The objects of kind that match, as listed at once and then after each change a watch shows.

        Given `since` (a resourceVersion of the objects as previewbot last saw them), there is no list:
        the watch shows what changed after it. When the API no longer keeps what changed since the
        watch's version (410), they are listed again; with `relist` False, the wakeups end instead.

        The view also wakes quiet after watch_seconds (recheck_interval unless told) without a
        change, so the caller can look closer (at pods, say); it stops at the deadline, or within
        watch_seconds of `stop` being set, or at once when `interrupt` is called. One list, then one
        watch request per watch_seconds: no polling.
        """
        view = _View()
        resource_version = since
        while True:
            if resource_version is None:
                listing = self._list_of(kind, namespace, label_selector=label_selector, field_selector=field_selector)
                view.objects = {_metadata(item)["name"]: item for item in listing["items"]}
                resource_version = str(_metadata(listing).get("resourceVersion") or "")
                view.quiet = False
                yield view
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return
            quiet = min(remaining, watch_seconds or self._recheck_interval)
            try:
                response = self._call(
                    self._request,
                    "GET",
                    kind.path(namespace),
                    query={
                        "watch": "true",
                        "resourceVersion": resource_version,
                        "timeoutSeconds": max(1, math.ceil(quiet)),
                        "labelSelector": label_selector or None,
                        "fieldSelector": field_selector or None,
                    },
                    stream=True,
                    read_timeout=quiet,
                )
            except errors.TemporaryError:
                continue  # the API hiccuped past its retries: the deadline still bounds the wait
            finished = False
            try:
                if interrupt is not None and not interrupt.reading(response):
                    return
                for line in _lines(response):
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") != 410:
                            raise errors.ApiError(str(obj.get("message") or obj), status=int(obj.get("code") or 0))
                        if not relist:
                            return
                        resource_version = None  # the watch fell too far behind: list again
                        break
                    name = _metadata(obj).get("name", "")
                    resource_version = str(_metadata(obj).get("resourceVersion") or resource_version)
                    if event.get("type") == "DELETED":
                        view.objects.pop(name, None)
                    else:
                        view.objects[name] = obj
                    view.quiet = False
                    yield view
                else:
                    view.quiet = True
                finished = True
            except urllib3.exceptions.HTTPError:
                view.quiet = True  # nothing happened for `quiet` seconds, or the stream broke
            finally:
                if interrupt is not None and not interrupt.done_reading():
                    finished = False  # its socket may have been shut down
                if not finished:
                    response.close()  # a stream left half-read must not go back to the pool as it is
                response.release_conn()
            if interrupt is not None and interrupt.requested.is_set():
                return
            if view.quiet:
                yield view

    # -------------------------------------------------------- namespaces

    def namespace(self, name: str) -> NamespaceInfo | None:
        found = self._get(None, ObjectRef(api_version="v1", kind="Namespace", name=name))
        return _namespace_info(found) if found else None

    def namespaces(self, *, label_selector: str) -> list[NamespaceInfo]:
        return [
            _namespace_info(item)
            for item in self._list("v1", "Namespace", namespace=None, label_selector=label_selector)
        ]

    def create_namespace(self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)},
        }
        made: Obj = self._call(self._request, "POST", NAMESPACE.path(), body=body)
        self._remember_version(name, made)
        self._namespaces_made.add(name)
        log.info("created namespace %s", name)

    def bind_preview_role(self, namespace: str, *, labels: Mapping[str, str], timeout: float = 5.0) -> None:
        """Grant previewbot's own identity the preview ClusterRole in namespace, and wait until RBAC honours it."""
        review: Obj = self._call(
            self._request,
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        me = rbac.subject(str(((review.get("status") or {}).get("userInfo") or {}).get("username")))
        body = rbac.preview_binding(namespace, name=self._rbac_name, subject=me, labels=labels)
        bindings = self._resource(rbac.RBAC_API_VERSION, "RoleBinding")
        try:
            self._call(self._request, "POST", bindings.path(namespace), body=body)
            role = rbac.preview_role(self._rbac_name)
            log.info("bound %s %s to ClusterRole %s in %s", me["kind"], me["name"], role, namespace)
        except errors.Conflict:
            pass  # bound by an earlier run
        # The authorizer learns of a new binding from a watch: a moment passes before it counts. If it
        # never does (the ClusterRole lacks the rule asked about), the call that needs it will say so.
        probe = {"verb": "list", "group": "", "resource": "pods", "namespace": namespace}
        deadline = time.monotonic() + timeout
        while not self._allowed(probe):
            if time.monotonic() > deadline:
                log.warning("%s may not list pods in %s yet", me["name"], namespace)
                return
            time.sleep(0.1)

    def _allowed(self, attributes: Mapping[str, str]) -> bool:
        review: Obj = self._call(
            self._request,
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": dict(attributes)},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    def annotate_namespace(
        self, name: str, *, annotations: Mapping[str, str | None], labels: Mapping[str, str] | None = None
    ) -> None:
        metadata: Obj = {"annotations": dict(annotations)}
        if labels is not None:
            metadata["labels"] = dict(labels)
        annotated: Obj = self._call(
            self._request,
            "PATCH",
            NAMESPACE.path(name=name),
            body={"metadata": metadata},
            content_type="application/merge-patch+json",
        )
        self._remember_version(name, annotated)

    def _remember_version(self, name: str, written: Obj) -> None:
        """The namespace's resourceVersion as this client last wrote it: following it starts from there."""
        self._namespace_versions[name] = str(_metadata(written).get("resourceVersion") or "") or None

    def delete_namespace(self, name: str) -> None:
        self._call(self._request, "DELETE", NAMESPACE.path(name=name))
        self._namespace_versions.pop(name, None)  # a long-running server deletes many: none is followed again
        log.info("deleting namespace %s", name)

    @contextlib.contextmanager
    def following_namespace(self, name: str, on_change: Callable[[NamespaceInfo | None], None]) -> Iterator[None]:
        interrupt = _Interrupt()

        def follow() -> None:
            try:
                for view in self._wakeups(
                    NAMESPACE,
                    deadline=math.inf,
                    field_selector=f"metadata.name={name}",
                    stop=interrupt.requested,
                    interrupt=interrupt,
                    watch_seconds=ROLLOUT_WATCH_SECONDS,
                    since=self._namespace_versions.get(name),
                ):
                    if not view.quiet:
                        found = view.objects.get(name)
                        on_change(_namespace_info(found) if found else None)
            except errors.PreviewbotError as error:
                log.warning("stopped following namespace %s: %s", name, error)

        follower = threading.Thread(target=follow, name=f"follow-{name}", daemon=True)
        follower.start()
        try:
            yield
        finally:
            interrupt()
            follower.join()

    def wait_namespace_gone(self, name: str, *, timeout: float, progress: Progress | None = None) -> bool:
        started = time.monotonic()
        announced = False
        for view in self._wakeups(NAMESPACE, deadline=started + timeout, field_selector=f"metadata.name={name}"):
            if name not in view.objects:
                return True
            if progress and not announced:
                progress(f"namespace/{name}: waiting for its deletion to finish")
                announced = True
        return False

    # -------------------------------------------------------- apply and prune

    def apply(
        self, namespace: str, objects: Sequence[Mapping[str, Any]], *, warn: Progress | None = None
    ) -> list[ObjectRef]:
        """Prerequisites first (what pods may need when they start: config, accounts, quotas), then the rest.

        Within each of the two, objects go to the API in parallel. The first refusal, in the order of
        `objects`, is raised once its group is done; the groups after it are not applied. `warn` hears
        each warning the API server sends back (deprecated APIs, Pod Security), naming the object.
        """
        planned = [self._plan_apply(namespace, obj) for obj in objects]
        first = [item for item in planned if item[0].kind in PREREQUISITE_KINDS]
        then = [item for item in planned if item[0].kind not in PREREQUISITE_KINDS]
        with ThreadPoolExecutor(max_workers=self._apply_parallelism, thread_name_prefix="apply") as pool:
            for group in (first, then):
                outcomes = list(pool.map(lambda item: self._apply_one(namespace, *item, warn=warn), group))
                refused = next((outcome for outcome in outcomes if outcome is not None), None)
                if refused is not None:
                    raise refused
        applied = [ref for ref, _, _ in planned]
        log.info("applied %d objects to %s", len(applied), namespace)
        return applied

    def _plan_apply(self, namespace: str, obj: Mapping[str, Any]) -> tuple[ObjectRef, Kind, Obj]:
        """The object's ref, where it is served, and the body to apply; refused before anything is applied."""
        metadata = _metadata(obj)
        ref = ObjectRef(
            api_version=str(obj.get("apiVersion", "")),
            kind=str(obj.get("kind", "")),
            name=str(metadata.get("name", "")),
            namespace=namespace,
        )
        try:
            kind = self._resource(ref.api_version, ref.kind)
        except errors.NotFound as exc:
            raise errors.Invalid(f"{ref}: {exc}", status=exc.status) from exc
        if not kind.namespaced:
            raise errors.ManifestError(f"{ref}: a cluster-wide kind cannot be part of a preview")
        return ref, kind, {**obj, "metadata": {**metadata, "namespace": namespace}}

    def _apply_one(
        self, namespace: str, ref: ObjectRef, kind: Kind, body: Obj, *, warn: Progress | None
    ) -> errors.PreviewbotError | None:
        """Server-side apply one object; what refused it, or None."""

        def warned(text: str) -> None:
            log.warning("%s: the API server warns: %s", ref, text)
            if warn:
                warn(f"{ref}: {text}")

        try:
            applied: Obj = self._call(
                self._request,
                "PATCH",
                kind.path(namespace, ref.name),
                query={"fieldManager": naming.FIELD_MANAGER, "force": "true"},
                body=body,
                content_type="application/apply-patch+yaml",
                warn=warned,
            )
        except (errors.Invalid, errors.NotFound) as exc:
            return errors.Invalid(f"{ref} was refused: {exc}", status=exc.status)
        except errors.Forbidden as exc:
            return errors.Forbidden(f"{ref} was refused: {exc}", status=exc.status)
        except errors.PreviewbotError as exc:
            return exc
        if ref.kind in _ROLLOUT_RULES:
            generation = int(_metadata(applied).get("generation") or 0)
            with self._applied_generations_lock:
                self._applied_generations.setdefault(namespace, {})[_ref_key(ref)] = generation
        return None

    def _generations_applied(self, namespace: str) -> dict[tuple[str, str, str], int]:
        """The generations the namespace's last apply left its workloads at, taken: the next apply records its own."""
        with self._applied_generations_lock:
            return self._applied_generations.pop(namespace, {})

    def prune(
        self, namespace: str, *, label_selector: str, kinds: Sequence[tuple[str, str]], keep: set[ObjectRef]
    ) -> list[ObjectRef]:
        kept = {_ref_key(ref) for ref in keep}
        pruned = []
        for api_version, kind in kinds:
            try:
                found = self._list(api_version, kind, namespace=namespace, label_selector=label_selector)
            except errors.NotFound:
                continue  # the cluster no longer serves the kind, so nothing of it can be left
            for item in found:
                if _metadata(item).get("ownerReferences"):
                    continue  # made by another object (a Deployment's pods): its owner decides when it goes
                ref = ObjectRef(api_version=api_version, kind=kind, name=_metadata(item)["name"], namespace=namespace)
                if _ref_key(ref) not in kept and self._delete(namespace, ref):
                    pruned.append(ref)
        if pruned:
            log.info("pruned from %s: %s", namespace, ", ".join(map(str, pruned)))
        return pruned

    # -------------------------------------------------------- rollout

    def wait_rollout(
        self,
        namespace: str,
        workloads: Sequence[ObjectRef],
        *,
        timeout: float,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        applied: Future[None] | None = None,
    ) -> RolloutResult:
        """Anything but a Deployment, StatefulSet, DaemonSet or Job has nothing to wait for: it is ready.

        With `applied`, the wait may begin before the apply ends: the first kind's watch is open
        meanwhile, and nothing is judged (and the timeout does not run) until `applied` is done.
        """
        began = datetime.now(UTC) - EVENT_CLOCK_SKEW
        pending = [ref for ref in dict.fromkeys(workloads) if ref.kind in _ROLLOUT_RULES]
        ready = [ref for ref in workloads if ref.kind not in _ROLLOUT_RULES]
        failed: list[WorkloadDiagnosis] = []
        hopeless = _HopelessPods(hopeless=NEVER_STARTS | CRASHING, pull_grace=self._image_pull_grace)
        seen: dict[ObjectRef, _Rollout] = {}
        generations = {} if applied is not None else self._generations_applied(namespace)

        def look(ref: ObjectRef, obj: Obj | None, *, pods: list[Obj] | None) -> None:
            state = _rollout(ref.kind, obj)
            if progress and (ref not in seen or seen[ref].note != state.note):
                progress(f"{ref.kind.lower()}/{ref.name}: {state.note}")
            seen[ref] = state
            if state.done:
                pending.remove(ref)
                ready.append(ref)
                return
            cause = state.failed or (
                (
                    hopeless.verdict(self._rolling_pods(namespace, ref.kind, obj, _pods_selected(pods, obj)))
                    or self._pods_refused(namespace, ref.kind, obj, since=began)
                )
                if pods is not None
                else None
            )
            if cause:
                pending.remove(ref)
                failed.append(self._diagnose(namespace, ref, cause=str(cause)))
                if progress:
                    progress(f"{ref.kind.lower()}/{ref.name}: failed, {cause}")

        def as_applied(ref: ObjectRef, objects: Mapping[str, Obj]) -> bool:
            """Whether the watch shows the workload as the apply left it, or later: an older one is from before."""
            obj, key = objects.get(ref.name), _ref_key(ref)
            if key not in generations:
                return True
            return obj is not None and int(_metadata(obj).get("generation") or 0) >= generations[key]

        started = time.monotonic()
        deadline = started + timeout

        def apply_ended() -> None:
            nonlocal applied, generations, started, deadline
            assert applied is not None
            try:
                applied.result()  # waits for the apply's end; one that failed ends the wait, with its error
            finally:
                generations = self._generations_applied(namespace)
            applied = None
            started = time.monotonic()
            deadline = started + timeout

        over = False  # the deadline passed, or `stop` was set
        # One kind is watched at a time, that of the first workload still pending: the others roll out
        # meanwhile, and their own list shows where they stand when their turn comes.
        while pending and not over:
            first = pending[0]
            kind = self._resource(first.api_version, first.kind)
            views = functools.partial(
                self._wakeups, kind, deadline=math.inf, namespace=namespace, watch_seconds=ROLLOUT_WATCH_SECONDS
            )
            with _Feed(views, name="previewbot-rollout-watch") as feed, _on_set(stop, feed.wake):
                if applied is not None:
                    applied.add_done_callback(feed.wake)
                    while not applied.done():
                        feed.next(timeout=self._recheck_interval)
                    apply_ended()
                recheck = time.monotonic() + self._recheck_interval
                while True:
                    # A rollout on its way keeps changing its workload; every recheck_interval the
                    # namespace's pods are listed, once for all those still on their way, to tell a stuck one.
                    quiet = time.monotonic() >= recheck
                    if quiet:
                        recheck = time.monotonic() + self._recheck_interval
                    listed, objects = feed.objects is not None, feed.objects or {}
                    watched = [r for r in pending if listed and r.kind == first.kind and as_applied(r, objects)]
                    pods = self._list("v1", "Pod", namespace=namespace) if quiet and watched else None
                    for ref in watched:
                        look(ref, objects.get(ref.name), pods=pods)
                    if not pending or pending[0].kind != first.kind:
                        break
                    over = time.monotonic() >= deadline or (stop is not None and stop.is_set())
                    if over:
                        break
                    feed.next(timeout=min(recheck, deadline) - time.monotonic())
        if applied is not None:  # no workload to watch: the apply's end still says whether it failed
            apply_ended()
        for ref in [ref for ref in pending if ref not in seen]:  # of a kind whose turn never came: read once
            look(ref, self._get(namespace, ref), pods=None)
        readiness = dict.fromkeys(ready, Readiness.READY) | {d.workload: Readiness.FAILED for d in failed}
        waited = f"not ready after {time.monotonic() - started:.0f}s"
        failed.extend(self._diagnose(namespace, ref, cause=waited) for ref in pending)
        states = [
            WorkloadState(
                workload=ref,
                readiness=readiness.get(ref, Readiness.WAITING),
                ready=seen[ref].ready,
                desired=seen[ref].desired,
            )
            for ref in dict.fromkeys(workloads)
            if ref in seen
        ]
        return RolloutResult(ready=tuple(ready), failed=tuple(failed), workloads=tuple(states))

    def _pods_refused(self, namespace: str, kind: str, workload: Obj | None, *, since: datetime | None) -> str | None:
        """The refusal a controller met creating the workload's pods (its FailedCreate events), if any.

        A Deployment says so in its ReplicaFailure condition; the other controllers only in events,
        of which those before `since` belong to an earlier deploy.
        """
        uid = _metadata(workload or {}).get("uid")
        if kind == "Deployment" or not uid:
            return None
        refusals = [
            event
            for event in self._list(
                "v1", "Event", namespace=namespace, field_selector=f"involvedObject.uid={uid},reason=FailedCreate"
            )
            if since is None or _event_time(event) >= since
        ]
        if not refusals:
            return None
        return _refusal_of_pods(str(max(refusals, key=_event_time).get("message") or "FailedCreate"))

    def _pods_of(self, namespace: str, workload: Obj | None) -> list[Obj]:
        """The workload's pods, oldest first. (The API server gives every Job a selector of its own uid.)"""
        selector = _selector_text(((workload or {}).get("spec") or {}).get("selector"))
        if not selector:
            return []
        return sorted(self._list("v1", "Pod", namespace=namespace, label_selector=selector), key=_created)

    # -------------------------------------------------------- diagnosis

    def diagnose(self, namespace: str, workload: ObjectRef) -> WorkloadDiagnosis:
        return self._diagnose(namespace, workload, cause=None)

    def _diagnose(self, namespace: str, workload: ObjectRef, *, cause: str | None) -> WorkloadDiagnosis:
        obj = self._get(namespace, workload)
        pods = self._pods_of(namespace, obj) if workload.kind in _ROLLOUT_RULES else []
        stuck = [container for pod in pods for container in _stuck_containers(pod)]
        problems = tuple(
            ContainerProblem(
                pod=s.pod,
                container=s.container,
                reason=s.reason,
                message=s.message,
                restarts=s.restarts,
                log_tail=self._log_tail(namespace, s) if s.container else "",
            )
            for s in stuck
        )
        involved = {(workload.kind, workload.name)} | {("Pod", _metadata(pod)["name"]) for pod in pods}
        if workload.kind == "Deployment" and obj is not None:
            involved |= {("ReplicaSet", name) for name in self._replica_sets_of(namespace, obj)}
        state = _rollout(workload.kind, obj) if workload.kind in _ROLLOUT_RULES else None
        # Why comes first: it is the headline; how far the workload got follows.
        why = cause or (str(stuck[0]) if stuck else "")
        note = state.note if state else ""
        summary = f"{why} ({note})" if why and note else why or note
        return WorkloadDiagnosis(
            workload=workload,
            summary=summary or "no problem found",
            problems=problems,
            events=self._warnings(namespace, involved),
        )

    def _replica_sets_of(self, namespace: str, deployment: Obj) -> list[str]:
        return [_metadata(rs)["name"] for rs in self._owned_replica_sets(namespace, deployment)]

    def _owned_replica_sets(self, namespace: str, deployment: Obj) -> list[Obj]:
        selector = _selector_text((deployment.get("spec") or {}).get("selector"))
        uid = _metadata(deployment).get("uid", "")
        return [
            rs
            for rs in self._list("apps/v1", "ReplicaSet", namespace=namespace, label_selector=selector)
            if _is_owned_by(rs, uid)
        ]

    def _rolling_pods(self, namespace: str, kind: str, workload: Obj | None, pods: list[Obj]) -> list[Obj]:
        """Of a workload's pods, those its rollout waits for: a Deployment's of its newest ReplicaSet only.

        The pods of the ReplicaSet before (an image that could not be pulled, say) are on their way
        out: judging the rollout by them would fail the very push that mends them.
        """
        if kind != "Deployment" or workload is None or not pods:
            return pods
        replica_sets = self._owned_replica_sets(namespace, workload)
        if not replica_sets:
            return []
        newest = max(replica_sets, key=_revision)
        template_hash = (_metadata(newest).get("labels") or {}).get(POD_TEMPLATE_HASH)
        return [pod for pod in pods if (_metadata(pod).get("labels") or {}).get(POD_TEMPLATE_HASH) == template_hash]

    def _warnings(self, namespace: str, involved: set[tuple[str, str]]) -> tuple[str, ...]:
        about = [
            (_event_time(event), _event_line(event))
            for event in self._list("v1", "Event", namespace=namespace)
            if event.get("type") == "Warning"
            and (
                (event.get("involvedObject") or {}).get("kind"),
                (event.get("involvedObject") or {}).get("name"),
            )
            in involved
        ]
        return _newest_unique(about, limit=MAX_EVENTS)

    def _log_tail(self, namespace: str, stuck: _Stuck) -> str:
        """The last lines the container wrote; its previous run's when it crashed and waits to restart."""
        for previous in (True, False) if stuck.crashed_before else (False,):
            try:
                text = self._call(
                    self._request,
                    "GET",
                    POD.path(namespace, stuck.pod, "log"),
                    query={
                        "container": stuck.container,
                        "tailLines": LOG_TAIL_LINES,
                        "previous": str(previous).lower(),
                    },
                )
            except (errors.Invalid, errors.NotFound):
                continue  # a container that never started has no log, which is fine
            except errors.ApiError as exc:
                return f"[the log could not be read: {exc}]"
            return str(text).rstrip("\n")
        return ""

    # -------------------------------------------------------- jobs

    def run_job(
        self,
        namespace: str,
        job: Mapping[str, Any],
        *,
        timeout: float,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> JobOutcome:
        """A pod that cannot start (image, config) ends the run early, with a diagnosis.

        So does the timeout. Either way the Job is deleted: nothing keeps running against the preview.
        """
        deadline = time.monotonic() + timeout
        ref = ObjectRef(api_version="batch/v1", kind="Job", name=_metadata(job)["name"], namespace=namespace)
        if self._delete(namespace, ref) and not self._wait_gone(namespace, ref, deadline=deadline):
            raise errors.Conflict(f"{ref}: the previous run is still being deleted", status=409)
        body = {
            **job,
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {**_metadata(job), "namespace": namespace},
        }
        created: Obj = self._call(self._request, "POST", JOB.path(namespace), body=body)
        if progress:
            progress(f"job/{ref.name}: started")
        never_ran = _HopelessPods(hopeless=NEVER_STARTS, pull_grace=self._image_pull_grace)
        current: Obj | None = None
        interrupt = _Interrupt()
        with _on_set(stop, interrupt):
            for current, pods in self._job_wakeups(
                namespace, created, deadline=deadline, stop=stop, interrupt=interrupt
            ):
                if stuck := never_ran.verdict(pods):
                    return self._job_never_ran(namespace, ref, cause=str(stuck))
                if not pods and (refused := self._pods_refused(namespace, ref.kind, current, since=None)):
                    return self._job_never_ran(namespace, ref, cause=refused)
                state = _rollout(ref.kind, current)
                if state.failed and never_ran.failing_pull:
                    return self._job_never_ran(namespace, ref, cause=f"{state.failed}; {never_ran.failing_pull}")
                if state.failed and current and _deadline_exceeded(current):
                    break  # the Job's own deadline (previewbot sets it to the timeout) is a timeout
                if state.done or state.failed:
                    if progress:
                        progress(f"job/{ref.name}: {'succeeded' if state.done else 'failed'}")
                    output, unreadable = self._job_log(namespace, current)
                    return JobOutcome(succeeded=state.done, log=output, log_unreadable=unreadable)
        output, unreadable = self._job_log(namespace, current)
        self._delete(namespace, ref)
        stopped = stop is not None and stop.is_set()
        if progress:
            progress(f"job/{ref.name}: {'stopped' if stopped else f'timed out after {timeout:g}s'}")
        return JobOutcome(succeeded=False, timed_out=not stopped, log=output, log_unreadable=unreadable)

    def _job_wakeups(
        self, namespace: str, job: Obj, *, deadline: float, stop: threading.Event | None, interrupt: _Interrupt
    ) -> Iterator[tuple[Obj | None, list[Obj]]]:
        """The Job and its pods, at once and after each change, until the deadline.

        While a pod of the Job is on its way its changes come first, so the pods are watched;
        once none is, the Job's verdict is what comes next, so the Job is.
        """
        ref = ObjectRef(api_version="batch/v1", kind="Job", name=_metadata(job)["name"])
        watch_pods: Mapping[str, Any] = {
            "kind": POD,
            "label_selector": _selector_text((job.get("spec") or {}).get("selector")),
        }
        watch_job: Mapping[str, Any] = {"kind": JOB, "field_selector": f"metadata.name={ref.name}"}
        pods_on_their_way = True
        while True:
            for _ in self._wakeups(
                deadline=deadline,
                namespace=namespace,
                stop=stop,
                interrupt=interrupt,
                **(watch_pods if pods_on_their_way else watch_job),
            ):
                current = self._get(namespace, ref)
                pods = self._pods_of(namespace, current)
                yield current, pods
                if pods_on_their_way != (not pods or any(not _finished(pod) for pod in pods)):
                    pods_on_their_way = not pods_on_their_way
                    break
            else:
                return

    def _job_never_ran(self, namespace: str, ref: ObjectRef, *, cause: str) -> JobOutcome:
        diagnosis = self._diagnose(namespace, ref, cause=cause)
        self._delete(namespace, ref)
        return JobOutcome(succeeded=False, diagnosis=diagnosis)

    def _wait_gone(self, namespace: str, ref: ObjectRef, *, deadline: float) -> bool:
        kind = self._resource(ref.api_version, ref.kind)
        for view in self._wakeups(
            kind, deadline=deadline, namespace=namespace, field_selector=f"metadata.name={ref.name}"
        ):
            if ref.name not in view.objects:
                return True
        return False

    def _job_log(self, namespace: str, job: Obj | None) -> tuple[str, str | None]:
        """The log of the Job's latest pod, every container's, cut to its last JOB_LOG_LIMIT bytes.

        Also why it could not be read whole, if it could not: the log is then what came before.
        """
        pods = self._pods_of(namespace, job)
        if not pods:
            return "", "the Job's pod is gone"
        pod = pods[-1]
        pod_name = _metadata(pod)["name"]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or ()]
        logs = [(container, *self._whole_log(namespace, pod_name, container)) for container in containers]
        unreadable = next((f"the log of pod {pod_name}: {why}" for _, _, why in logs if why), None)
        if len(logs) == 1:
            return logs[0][1], unreadable
        return "\n".join(f"==> {container} <==\n{text}" for container, text, _ in logs), unreadable

    def _whole_log(self, namespace: str, pod: str, container: str) -> tuple[str, str | None]:
        try:
            # Unread, the log comes back as the HTTP response, to be streamed rather than held whole.
            response: urllib3.BaseHTTPResponse = self._call(
                self._request, "GET", POD.path(namespace, pod, "log"), query={"container": container}, stream=True
            )
        except errors.NotFound as exc:
            return "", f"the pod is gone ({exc})"
        except errors.TemporaryError as exc:
            return "", f"the node's kubelet could not be reached ({exc})"
        except errors.ApiError as exc:
            return "", str(exc)
        kept = bytearray()
        cut = False
        try:
            for chunk in response.stream(64 * 1024):
                kept += chunk
                if len(kept) > JOB_LOG_LIMIT:
                    del kept[: len(kept) - JOB_LOG_LIMIT]
                    cut = True
        except urllib3.exceptions.HTTPError as exc:
            return kept.decode(errors="replace"), f"the log ended early ({exc})"
        finally:
            response.release_conn()
        text = kept.decode(errors="replace")
        if cut:
            return f"[earlier output cut: only the last {JOB_LOG_LIMIT} bytes are kept]\n" + text.partition("\n")[
                2
            ], None
        return text, None

    def delete_jobs(self, namespace: str, *, label_selector: str, keep: str | None = None) -> list[str]:
        deleted = []
        for job in self._list("batch/v1", "Job", namespace=namespace, label_selector=label_selector):
            name = _metadata(job)["name"]
            if name != keep and self._delete(namespace, ObjectRef(api_version="batch/v1", kind="Job", name=name)):
                deleted.append(name)
        return deleted

    # -------------------------------------------------------- secrets

    def copy_secret(
        self,
        *,
        source_namespace: str,
        name: str,
        target_namespace: str,
        labels: Mapping[str, str],
        target_name: str | None = None,
    ) -> None:
        """Only the type and data travel: the source's labels and annotations stay where they are."""
        secrets = BUILT_IN_KINDS[("v1", "Secret")]
        source: Obj = self._call(self._request, "GET", secrets.path(source_namespace, name))
        # From here on the values may surface in an error or a log: they must be masked there.
        for encoded in (source.get("data") or {}).values():
            redactor.add(base64.b64decode(encoded).decode(errors="replace"))
        copy: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": target_name or name, "namespace": target_namespace, "labels": dict(labels)},
            "type": source.get("type") or "Opaque",
            "data": source.get("data") or {},
        }
        try:
            self._call(self._request, "POST", secrets.path(target_namespace), body=copy)
        except errors.Conflict:
            target = secrets.path(target_namespace, target_name or name)
            existing: Obj = self._call(self._request, "GET", target)
            copy["metadata"]["resourceVersion"] = _metadata(existing).get("resourceVersion")
            self._call(self._request, "PUT", target, body=copy)
        log.info("copied secret %s/%s into %s", source_namespace, name, target_namespace)

    # -------------------------------------------------------- endpoints

    def endpoints(self, namespace: str, *, kinds: Collection[EndpointKind]) -> list[Endpoint]:
        found: list[Endpoint] = []
        if EndpointKind.INGRESS in kinds:
            for ingress in self._list(INGRESS_API_VERSION, "Ingress", namespace=namespace):
                found += _ingress_endpoints(ingress)
        service_kinds = {kind.value for kind in kinds} & {EndpointKind.LOAD_BALANCER, EndpointKind.NODE_PORT}
        if service_kinds:
            for service in self._list("v1", "Service", namespace=namespace):
                if (service.get("spec") or {}).get("type") in service_kinds:
                    found.append(_service_endpoint(service))
        return found

    # -------------------------------------------------------- sleep and wake

    def replicas(self, namespace: str, *, label_selector: str) -> dict[ObjectRef, int]:
        found: dict[ObjectRef, int] = {}
        for kind in SCALABLE_KINDS:
            for item in self._list("apps/v1", kind, namespace=namespace, label_selector=label_selector):
                ref = ObjectRef(api_version="apps/v1", kind=kind, name=_metadata(item)["name"], namespace=namespace)
                found[ref] = int((item.get("spec") or {}).get("replicas", 1))
        return found

    def scale(self, namespace: str, replicas: Mapping[ObjectRef, int]) -> None:
        for ref, count in replicas.items():
            try:
                self._call(
                    self._request,
                    "PATCH",
                    self._resource(ref.api_version, ref.kind).path(namespace, ref.name),
                    body={"spec": {"replicas": count}},
                    content_type="application/merge-patch+json",
                )
            except errors.NotFound:
                log.info("%s is gone from %s: nothing to scale", ref, namespace)

    # -------------------------------------------------------- leases

    def take_lease(self, namespace: str, name: str, *, holder: str, seconds: int) -> bool:
        """Every write names the resourceVersion it read: of two takers, the API lets one through."""
        leases = self._resource(LEASE_API_VERSION, "Lease")
        now = datetime.now(UTC)
        claim = {"holderIdentity": holder, "leaseDurationSeconds": seconds, "renewTime": _micro_time(now)}
        new = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**claim, "acquireTime": _micro_time(now), "leaseTransitions": 0},
        }
        if namespace in self._namespaces_made:
            # A namespace this client just made has no Lease, unless another taker made one since: no read first.
            self._namespaces_made.discard(namespace)
            if self._create_lease(leases, new):
                return True
        try:
            current: Obj = self._call(self._request, "GET", leases.path(namespace, name))
        except errors.NotFound:
            return self._create_lease(leases, new)
        held = current.get("spec") or {}
        if held.get("holderIdentity") != holder:
            if not _lease_run_out(held, now):
                self._leases_held_by_others[(namespace, name)] = current
                return False
            claim["acquireTime"] = _micro_time(now)
            claim["leaseTransitions"] = int(held.get("leaseTransitions") or 0) + 1
        replaced = self._replace_lease(leases, current, {**held, **claim})
        if replaced is not None:
            self._leases_written[(namespace, name)] = replaced
        return replaced is not None

    def _create_lease(self, leases: Kind, lease: Obj) -> bool:
        metadata = _metadata(lease)
        try:
            created: Obj = self._call(self._request, "POST", leases.path(metadata["namespace"]), body=lease)
        except errors.Conflict:
            return False  # another taker created it first
        self._leases_written[(metadata["namespace"], metadata["name"])] = created
        return True

    def release_lease(self, namespace: str, name: str, *, holder: str) -> None:
        """Given back from the Lease as this client last wrote it; when that is no longer the Lease's
        version (a 409), another run has taken it since, and there is nothing to give back."""
        leases = self._resource(LEASE_API_VERSION, "Lease")
        current = self._leases_written.get((namespace, name))
        if current is not None and (current.get("spec") or {}).get("holderIdentity") == holder:
            self._leases_written.pop((namespace, name), None)
        else:
            try:
                current = self._call(self._request, "GET", leases.path(namespace, name))
            except errors.NotFound:
                return
        held = current.get("spec") or {}
        if held.get("holderIdentity") == holder:
            self._replace_lease(leases, current, {**held, "holderIdentity": None, "renewTime": None})

    def wait_lease(self, namespace: str, name: str, *, give_up: threading.Event) -> None:
        """One watch request from the version take_lease read, up to when the Lease would run out; a
        renewal by the same holder moves that moment on and starts the next. No list (previewbot may
        not list leases): a watch whose version the API no longer keeps ends the wait, and the take
        that follows reads the Lease anew."""
        leases = self._resource(LEASE_API_VERSION, "Lease")
        lease = self._leases_held_by_others.pop((namespace, name), None)
        if lease is None:
            try:
                lease = self._call(self._request, "GET", leases.path(namespace, name))
            except errors.NotFound:
                return
        holder = (lease.get("spec") or {}).get("holderIdentity")
        interrupt = _Interrupt()
        with _on_set(give_up, interrupt):
            while holder and (lease.get("spec") or {}).get("holderIdentity") == holder:
                left = _lease_seconds_left(lease.get("spec") or {}, datetime.now(UTC))
                shown: Obj | None = None
                for view in self._wakeups(
                    leases,
                    deadline=time.monotonic() + left + LEASE_RUN_OUT_MARGIN,
                    namespace=namespace,
                    field_selector=f"metadata.name={name}",
                    stop=give_up,
                    interrupt=interrupt,
                    watch_seconds=math.inf,
                    since=str(_metadata(lease).get("resourceVersion") or ""),
                    relist=False,
                ):
                    if not view.quiet:
                        shown = view.objects.get(name)
                        break
                if shown is None:  # run out, given up, or deleted
                    return
                lease = shown

    def _replace_lease(self, leases: Kind, current: Obj, spec: Obj) -> Obj | None:
        """The Lease as written, or None when it changed since it was read: someone else renewed or took it."""
        metadata = _metadata(current)
        key = (metadata["namespace"], metadata["name"])
        body = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": key[1], "namespace": key[0], "resourceVersion": metadata["resourceVersion"]},
            "spec": {key: value for key, value in spec.items() if value is not None},
        }
        try:
            replaced: Obj = self._call(self._request, "PUT", leases.path(*key), body=body)
        except errors.Conflict:
            return None
        return replaced


INGRESS_API_VERSION = "networking.k8s.io/v1"


def _load_balancer_addresses(obj: Obj) -> tuple[str, ...]:
    """The IPs and hostnames a load balancer (or an Ingress controller) wrote in the object's status."""
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    return tuple(
        str(entry.get("ip") or entry.get("hostname")) for entry in entries if entry.get("ip") or entry.get("hostname")
    )


def _tls_covers(host: str, tls_hosts: set[str]) -> bool:
    """Whether spec.tls names the host, or a wildcard over it ("*.example.com" covers "a.example.com")."""
    return bool(host) and (host in tls_hosts or f"*.{host.partition('.')[2]}" in tls_hosts)


def _ingress_endpoints(ingress: Obj) -> list[Endpoint]:
    """One endpoint per host and path of the Ingress's rules; one for a default backend without rules."""
    name = _metadata(ingress)["name"]
    spec = ingress.get("spec") or {}
    tls_hosts = {str(host) for entry in spec.get("tls") or () for host in entry.get("hosts") or ()}
    addresses = _load_balancer_addresses(ingress)
    found = []
    for rule in spec.get("rules") or ():
        host = str(rule.get("host") or "")
        paths = [str(path.get("path") or "") for path in (rule.get("http") or {}).get("paths") or ()]
        for path in paths or [""]:
            found.append(
                Endpoint(
                    kind=EndpointKind.INGRESS,
                    name=name,
                    host=host,
                    path=path,
                    tls=_tls_covers(host, tls_hosts),
                    addresses=addresses,
                )
            )
    if not found and spec.get("defaultBackend"):
        found.append(Endpoint(kind=EndpointKind.INGRESS, name=name, addresses=addresses))
    return found


def _service_endpoint(service: Obj) -> Endpoint:
    """A LoadBalancer with the ports it serves on its addresses; a NodePort with its ports on every node."""
    spec = service.get("spec") or {}
    kind = EndpointKind(spec["type"])
    port_key = "nodePort" if kind is EndpointKind.NODE_PORT else "port"
    ports = tuple(
        str(port[port_key]) + ("" if port.get("protocol", "TCP") == "TCP" else f"/{port['protocol']}")
        for port in spec.get("ports") or ()
        if port.get(port_key)
    )
    addresses = _load_balancer_addresses(service) if kind is EndpointKind.LOAD_BALANCER else ()
    return Endpoint(kind=kind, name=_metadata(service)["name"], ports=ports, addresses=addresses)


LEASE_API_VERSION = "coordination.k8s.io/v1"


def _micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lease_run_out(spec: Mapping[str, Any], now: datetime) -> bool:
    """True when nobody holds the lease, or its holder did not renew it in time."""
    return _lease_seconds_left(spec, now) < 0


def _lease_seconds_left(spec: Mapping[str, Any], now: datetime) -> float:
    """Seconds until the lease runs out by its holder's last renewal; below zero once it has, or when none holds it."""
    renewed = spec.get("renewTime")
    if not spec.get("holderIdentity") or not renewed:
        return -math.inf
    renewed_at = renewed if isinstance(renewed, datetime) else _timestamp(str(renewed))
    return float(spec.get("leaseDurationSeconds") or 0) - (now - renewed_at).total_seconds()
