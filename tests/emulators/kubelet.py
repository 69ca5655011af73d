"""The test-only node of the emulated cluster: workload controllers, a scheduler and a kubelet.

They run on one background thread against the KubeApiServer's state, and decide each
container's fate from its spec the way a real node would, so that a test written against
the emulator passes on a real cluster too:

- an image on a registry host ending in `.invalid`, or listed in `Kubelet.missing_images`,
  cannot be pulled (ErrImagePull, then ImagePullBackOff, with Warning events);
- a container with neither command nor args (a server image) runs, is ready, and stays up;
- `sh -c SCRIPT` runs a small subset of sh (echo, printf, `cat <<EOF` here-documents, `> FILE`,
  sleep, exit, true, false): output goes to the container's log, `sleep` lasts its seconds times
  `time_scale`, and the script's exit status ends the container;
- an env or envFrom reference to a missing Secret or ConfigMap is CreateContainerConfigError.

Every real-world duration (sleeps, back-offs, progress and active deadlines) is multiplied by
`time_scale`, so a rollout settles in tens of milliseconds.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import shlex
import string
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.emulators.kube import NODE_NAME, ApiStatusError, KubeApiServer, Obj, now_rfc3339, template_hash

CRASH_BACK_OFF = (0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)  # seconds before each restart, as kubelet waits
IMAGE_BACK_OFF = (10.0, 20.0, 40.0, 80.0, 160.0, 300.0)
JOB_BACK_OFF = 10.0  # doubled for every failed pod
_NAME_CHARS = string.ascii_lowercase + string.digits


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


def _back_off(steps: tuple[float, ...], attempt: int) -> float:
    return steps[min(attempt, len(steps) - 1)]


# ---------------------------------------------------------------- the sh subset


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a script does: write output, sleep, or end with a status."""

    output: str = ""
    sleep: float = 0.0
    status: int = 0
    exits: bool = False


_HEREDOC = re.compile(r"cat\s*(?:>\s*(?P<before>\S+)\s*)?<<-?\s*(['\"]?)(?P<word>\w+)\2\s*(?:>\s*(?P<after>\S+))?")
_STD_REDIRECT = re.compile(r"\s[12]?>(&[12]|\s*/dev/std(out|err))")
_TO_NULL = re.compile(r"\s2>\s*/dev/null")
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
_VARIABLE = re.compile(r"\$(\?|\{\w+\}|\w+)")
_PRINTF_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}
SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash")


def _printf(arguments: list[str]) -> str:
    if not arguments:
        return ""
    values = iter(arguments[1:])

    def conversion(match: re.Match[str]) -> str:
        if match[0] == "%%":
            return "%"
        if match[0].startswith("\\"):
            return _PRINTF_ESCAPES.get(match[0][1], match[0])
        return next(values, "")

    return re.sub(r"%%|%[sdi]|\\.", conversion, arguments[0])


@dataclass
class _Shell:
    """What one sh process knows while its script is read: variables, $?, its arguments, the files it wrote.

    Scripts have no branches, so reading one once, in order, tells everything it will do;
    only the time its sleeps take is left to the kubelet.
    """

    variables: dict[str, str]
    arguments: list[str]  # $0, $1, ...
    files: dict[str, str]
    status: int = 0
    steps: list[Step] = field(default_factory=list)

    def expand(self, word: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match[1].strip("{}")
            return str(self.status) if name == "?" else self.variables.get(name, "")

        return _VARIABLE.sub(value, word)

    def add(self, step: Step) -> None:
        self.steps.append(step)
        self.status = step.status

    def run(self, words: list[str], *, quiet_errors: bool) -> bool:
        """Run one simple command; False when it ends the script (exit)."""
        if ">" in words[1:-1]:
            # `command > FILE`: what the command prints goes to the file, not to the log.
            at = words.index(">")
            target, words = self.expand(words[at + 1]), words[:at]
            before = len(self.steps)
            going_on = self.run(words, quiet_errors=quiet_errors)
            self.files[target] = "".join(step.output for step in self.steps[before:])
            self.steps[before:] = [replace(step, output="") for step in self.steps[before:]]
            return going_on
        if words == ["$@"]:
            words = self.arguments[1:]
        elif all(_ASSIGNMENT.match(word) for word in words):
            for word in words:
                name, _, value = word.partition("=")
                self.variables[name] = self.expand(value)
            return True
        words = [self.expand(word) for word in words]
        name, arguments = words[0], words[1:]
        if name in SHELLS and arguments[:1] == ["-c"] and len(arguments) >= 2:
            # A child shell: its exit ends only itself, and its status becomes $?.
            child = _Shell(dict(self.variables), arguments[1:][1:] or [name], self.files)
            child.read(arguments[1])
            self.steps.extend(replace(step, exits=False) for step in child.steps)
            self.status = child.status
            return True
        if name == "echo":
            newline = "\n"
            if arguments[:1] == ["-n"]:
                arguments, newline = arguments[1:], ""
            self.add(Step(output=" ".join(arguments) + newline))
        elif name == "printf":
            self.add(Step(output=_printf(arguments)))
        elif name == "cat":
            missing = [path for path in arguments if path not in self.files]
            output = "".join(self.files.get(path, "") for path in arguments)
            if missing and not quiet_errors:
                output += "".join(f"cat: {path}: No such file or directory\n" for path in missing)
            self.add(Step(output=output, status=1 if missing else 0))
        elif name == "sleep":
            seconds = arguments[0] if arguments else "0"
            self.add(Step(sleep=math.inf if seconds == "infinity" else float(seconds.rstrip("s"))))
        elif name == "exit":
            self.add(Step(status=int(arguments[0]) if arguments else self.status, exits=True))
            return False
        elif name in ("true", ":", "set"):
            self.add(Step())
        elif name == "false":
            self.add(Step(status=1))
        else:
            self.add(Step(output=f"sh: 1: {name}: not found\n", status=127))
        return True

    def read(self, script: str) -> None:
        """Run the script of the supported subset; an unknown command fails as sh would."""
        lines = script.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index].strip()
            index += 1
            heredoc = _HEREDOC.fullmatch(line)
            if heredoc:
                body = []
                while index < len(lines) and lines[index].strip() != heredoc["word"]:
                    body.append(lines[index] + "\n")
                    index += 1
                index += 1
                target = heredoc["before"] or heredoc["after"]
                if target:
                    self.files[target] = "".join(body)
                    self.add(Step())
                else:
                    self.add(Step(output="".join(body)))
                continue
            # Both output streams go to the container's log, so redirections to them change nothing.
            quiet_errors = bool(_TO_NULL.search(line))
            line = _TO_NULL.sub("", _STD_REDIRECT.sub("", line))
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in (";", "&&", "||", "&", "|"):
                    words.append(token)
                    continue
                if words and not self.run(words, quiet_errors=quiet_errors):
                    return
                words = []


def parse_script(script: str, *, arguments: list[str] | None = None, env: dict[str, str] | None = None) -> list[Step]:
    """The steps of a shell script of the supported subset."""
    shell = _Shell(dict(env or {}), arguments or ["sh"], {})
    shell.read(script)
    return shell.steps


def container_script(container: Obj) -> list[Step] | None:
    """The steps of an `sh -c` container, or None for a server that runs until stopped."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if not words:
        return None
    if words[0] in SHELLS and len(words) >= 3 and words[1] == "-c":
        env = {item["name"]: str(item.get("value", "")) for item in container.get("env") or [] if "name" in item}
        return parse_script(words[2], arguments=words[3:] or [words[0]], env=env)
    return None


# ---------------------------------------------------------------- container runtime


@dataclass
class ContainerRun:
    """What the node knows of one container of one pod."""

    name: str
    image: str
    restarts: int = 0
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    started: bool = False  # has run at least once, so it has a log
    steps: list[Step] | None = None
    position: int = 0
    last_status: int = 0
    wake_at: float = 0.0  # when a sleep, a back-off or a pull retry is over
    restart_pending: bool = False  # exited under a restart policy that brings it back after wake_at
    pull_attempts: int = 0

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def waiting_reason(self) -> str:
        return str(self.state.get("waiting", {}).get("reason", ""))


@dataclass
class PodRun:
    containers: dict[str, ContainerRun]
    start_time: str = field(default_factory=now_rfc3339)
    ip: str = ""


# ---------------------------------------------------------------- the node


class Kubelet:
    """Controllers, scheduler and kubelet of a one-node emulated cluster, on one background thread."""

    def __init__(self, server: KubeApiServer, *, time_scale: float = 0.01, tick: float = 0.005) -> None:
        self.server = server
        self.time_scale = time_scale
        self.tick = tick
        self.missing_images: set[str] = set()
        self._pods: dict[str, PodRun] = {}
        self._events: dict[tuple[str, str, str], str] = {}  # (uid, reason, message) -> Event name
        self._progress: dict[str, tuple[Any, float]] = {}  # Deployment uid -> (status seen, since)
        self._job_started: dict[str, float] = {}  # Job uid -> when its controller first saw it
        self._job_failures: dict[str, tuple[int, float]] = {}  # Job uid -> (failures counted, when last seen to grow)
        self._next_ip = 10
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-node")

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def _run(self) -> None:
        reconcilers: list[tuple[str, Callable[[Obj], None]]] = [
            ("Deployment", self._deployment),
            ("ReplicaSet", self._replica_set),
            ("StatefulSet", self._stateful_set),
            ("DaemonSet", self._daemon_set),
            ("Job", self._job),
            ("Pod", self._pod),
        ]
        while not self._stop.wait(self.tick):
            for kind, reconcile in reconcilers:
                for obj in self.server.objects(kind):
                    self._guarded(reconcile, obj)
            live = {pod["metadata"]["uid"] for pod in self.server.objects("Pod")}
            for uid in set(self._pods) - live:
                del self._pods[uid]

    def _guarded(self, reconcile: Callable[[Obj], None], obj: Obj) -> None:
        """An object gone or a namespace terminating meanwhile is normal; anything else is a bug to show."""
        try:
            reconcile(obj)
        except ApiStatusError as refusal:
            if refusal.code not in (403, 404, 409):
                self.server.internal_errors.append(traceback.format_exc())
        except Exception:
            self.server.internal_errors.append(traceback.format_exc())

    # ------------------------------------------------------------ shared helpers

    def event(
        self, involved: Obj, *, reason: str, message: str, warning: bool = False, component: str = "kubelet"
    ) -> None:
        """Record a v1 Event on an object; a repeat of the same one counts up, as a real cluster does."""
        metadata = involved["metadata"]
        key = (metadata["uid"], reason, message)
        namespace = metadata["namespace"]
        now = now_rfc3339()
        existing = self._events.get(key)
        if existing is not None:
            current = self.server.get("Event", existing, namespace=namespace)
            if current is not None:
                self.server.patch(
                    "Event",
                    existing,
                    {"count": current.get("count", 1) + 1, "lastTimestamp": now},
                    namespace=namespace,
                )
                return
        name = f"{metadata['name']}.{secrets.token_hex(8)}"
        self._events[key] = name
        self.server.create(
            "Event",
            {
                "metadata": {"name": name},
                "involvedObject": {
                    "apiVersion": involved["apiVersion"],
                    "kind": involved["kind"],
                    "name": metadata["name"],
                    "namespace": namespace,
                    "uid": metadata["uid"],
                    "resourceVersion": metadata.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "source": {"component": component, **({"host": NODE_NAME} if component == "kubelet" else {})},
                "reportingComponent": component,
                "reportingInstance": NODE_NAME if component == "kubelet" else "",
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
            namespace=namespace,
        )

    def _owned(self, kind: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            obj
            for obj in self.server.objects(kind, namespace=owner["metadata"]["namespace"])
            if any(
                ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or []
            )
        ]

    @staticmethod
    def _owner_reference(owner: Obj) -> Obj:
        return {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _create_pod(self, owner: Obj, *, name: str, template: Obj, labels: dict[str, str] | None = None) -> str | None:
        """Create the owner's pod; when admission refuses it, a FailedCreate event and the refusal's message."""
        metadata = copy.deepcopy(template.get("metadata") or {})
        metadata.update(name=name, ownerReferences=[self._owner_reference(owner)])
        metadata["labels"] = {**(metadata.get("labels") or {}), **(labels or {})}
        try:
            pod = self.server.create(
                "Pod",
                {"metadata": metadata, "spec": copy.deepcopy(template["spec"])},
                namespace=owner["metadata"]["namespace"],
                admit=True,
            )
        except ApiStatusError as refusal:
            if refusal.code not in (403, 422):
                raise
            message = (
                f"create Pod {name} in StatefulSet {owner['metadata']['name']} failed error: {refusal.message}"
                if owner["kind"] == "StatefulSet"
                else f"Error creating: {refusal.message}"
            )
            component = f"{owner['kind'].lower()}-controller"
            self.event(owner, reason="FailedCreate", message=message, warning=True, component=component)
            return refusal.message
        message = (
            f"create Pod {name} in StatefulSet {owner['metadata']['name']} successful"
            if owner["kind"] == "StatefulSet"
            else f"Created pod: {pod['metadata']['name']}"
        )
        self.event(owner, reason="SuccessfulCreate", message=message, component=f"{owner['kind'].lower()}-controller")
        return None

    def _delete_pod(self, owner: Obj, pod: Obj) -> None:
        self.server.delete("Pod", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        message = (
            f"delete Pod {pod['metadata']['name']} in StatefulSet {owner['metadata']['name']} successful"
            if owner["kind"] == "StatefulSet"
            else f"Deleted pod: {pod['metadata']['name']}"
        )
        self.event(owner, reason="SuccessfulDelete", message=message, component=f"{owner['kind'].lower()}-controller")

    def _set_status(self, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status:
            self.server.replace(
                obj["kind"],
                {**obj, "status": status},
                namespace=obj["metadata"]["namespace"],
                status_only=True,
                check_version=False,
            )

    @staticmethod
    def _condition(
        previous: Obj, kind: str, status: bool, reason: str, message: str, *, stamp_updates: bool = False
    ) -> Obj:
        """A condition that keeps its lastTransitionTime while its status stays the same."""
        old = next((c for c in previous.get("conditions") or [] if c["type"] == kind), None)
        value = "True" if status else "False"
        now = now_rfc3339()
        changed = old is None or old["status"] != value
        condition = {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now if changed or old is None else old["lastTransitionTime"],
        }
        if stamp_updates:
            same = old is not None and old.get("reason") == reason and old.get("message") == message and not changed
            condition["lastUpdateTime"] = old["lastUpdateTime"] if same and old else now
        return condition

    @staticmethod
    def _ready(pod: Obj) -> bool:
        return (
            any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])
            and pod["status"].get("phase") == "Running"
        )

    # ------------------------------------------------------------ Deployments and ReplicaSets

    def _deployment(self, deployment: Obj) -> None:
        spec, metadata = deployment["spec"], deployment["metadata"]
        desired = int(spec.get("replicas", 1))
        pod_hash = template_hash(spec["template"])
        replica_sets = self._owned("ReplicaSet", deployment)
        new_name = f"{metadata['name']}-{pod_hash}"
        new = next((rs for rs in replica_sets if rs["metadata"]["name"] == new_name), None)
        if new is None:
            new = self._create_replica_set(deployment, name=new_name, pod_hash=pod_hash, revision=len(replica_sets) + 1)
            replica_sets.append(new)
        elif new["spec"]["replicas"] != desired:
            self._scale(deployment, new, desired)
        old = [rs for rs in replica_sets if rs["metadata"]["name"] != new_name]
        new_status = new.get("status") or {}
        new_available = new_status.get("availableReplicas", 0) >= desired and new_status.get("replicas", 0) == desired
        for replica_set in old:
            if new_available and replica_set["spec"].get("replicas", 0) != 0:
                self._scale(deployment, replica_set, 0)
        self._deployment_status(deployment, new=new, replica_sets=replica_sets, desired=desired)

    def _create_replica_set(self, deployment: Obj, *, name: str, pod_hash: str, revision: int) -> Obj:
        spec = deployment["spec"]
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {})["labels"] = {
            **template["metadata"].get("labels", {}),
            "pod-template-hash": pod_hash,
        }
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        created = self.server.create(
            "ReplicaSet",
            {
                "metadata": {
                    "name": name,
                    "labels": template["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [self._owner_reference(deployment)],
                },
                "spec": {
                    "replicas": int(spec.get("replicas", 1)),
                    "selector": selector,
                    "template": template,
                },
            },
            namespace=deployment["metadata"]["namespace"],
        )
        self.event(
            deployment,
            reason="ScalingReplicaSet",
            message=f"Scaled up replica set {name} from 0 to {spec.get('replicas', 1)}",
            component="deployment-controller",
        )
        return created

    def _scale(self, deployment: Obj, replica_set: Obj, replicas: int) -> None:
        before, name = replica_set["spec"].get("replicas", 0), replica_set["metadata"]["name"]
        self.server.patch(
            "ReplicaSet",
            replica_set["metadata"]["name"],
            {"spec": {"replicas": replicas}},
            namespace=replica_set["metadata"]["namespace"],
        )
        direction = "up" if replicas > before else "down"
        self.event(
            deployment,
            reason="ScalingReplicaSet",
            message=f"Scaled {direction} replica set {name} from {before} to {replicas}",
            component="deployment-controller",
        )

    @staticmethod
    def _max_unavailable(deployment: Obj, desired: int) -> int:
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        value = rolling.get("maxUnavailable", "25%")
        if isinstance(value, str) and value.endswith("%"):
            return math.floor(desired * int(value[:-1]) / 100)
        return int(value)

    def _deployment_status(self, deployment: Obj, *, new: Obj, replica_sets: list[Obj], desired: int) -> None:
        statuses = [rs.get("status") or {} for rs in replica_sets]
        total = sum(s.get("replicas", 0) for s in statuses)
        available = sum(s.get("availableReplicas", 0) for s in statuses)
        updated = (new.get("status") or {}).get("replicas", 0)
        previous = deployment.get("status") or {}
        counts = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": sum(s.get("readyReplicas", 0) for s in statuses),
            "availableReplicas": available,
            "unavailableReplicas": max(max(total, desired) - available, 0),
        }
        uid, now = deployment["metadata"]["uid"], time.monotonic()
        seen, since = self._progress.get(uid, (None, now))
        if seen != counts:
            self._progress[uid] = (counts, now)
            since = now
        rs_name = new["metadata"]["name"]
        complete = updated == desired and total == desired and available == desired
        deadline = self.scaled(float(deployment["spec"].get("progressDeadlineSeconds", 600)))
        if complete:
            progressing = (
                True,
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif now - since > deadline:
            progressing = (
                False,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = (True, "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        minimum = available >= desired - self._max_unavailable(deployment, desired)
        available_condition = (
            (True, "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if minimum
            else (False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        )
        conditions = [
            self._condition(previous, "Available", *available_condition, stamp_updates=True),
            self._condition(previous, "Progressing", *progressing, stamp_updates=True),
        ]
        # The Deployment shows its new ReplicaSet's failure to create pods, as the real controller does.
        conditions += [
            {**condition, "lastUpdateTime": condition["lastTransitionTime"]}
            for condition in (new.get("status") or {}).get("conditions") or []
            if condition["type"] == "ReplicaFailure"
        ]
        self._set_status(
            deployment,
            # Zero counts are left out, as the real API omits them; clients read them as absent.
            {**{k: v for k, v in counts.items() if v}, "conditions": conditions},
        )

    def _replica_set(self, replica_set: Obj) -> None:
        desired = int(replica_set["spec"].get("replicas", 1))
        pods = [p for p in self._owned("Pod", replica_set) if p["status"].get("phase") not in ("Succeeded", "Failed")]
        name = replica_set["metadata"]["name"]
        refusals = [
            refusal
            for _ in range(desired - len(pods))
            if (
                refusal := self._create_pod(
                    replica_set, name=f"{name}-{_random_suffix()}", template=replica_set["spec"]["template"]
                )
            )
        ]
        for pod in sorted(pods, key=self._ready)[: max(len(pods) - desired, 0)]:
            self._delete_pod(replica_set, pod)
        pods = [p for p in self._owned("Pod", replica_set) if p["status"].get("phase") not in ("Succeeded", "Failed")]
        ready = sum(1 for p in pods if self._ready(p))
        status: Obj = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replica_set["metadata"]["generation"],
        }
        if refusals:
            previous = replica_set.get("status") or {}
            status["conditions"] = [self._condition(previous, "ReplicaFailure", True, "FailedCreate", refusals[-1])]
        self._set_status(replica_set, status)

    # ------------------------------------------------------------ StatefulSets and DaemonSets

    def _stateful_set(self, stateful_set: Obj) -> None:
        spec, name = stateful_set["spec"], stateful_set["metadata"]["name"]
        desired = int(spec.get("replicas", 1))
        revision = f"{name}-{template_hash(spec['template'])}"
        pods = {p["metadata"]["name"]: p for p in self._owned("Pod", stateful_set)}
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        for ordinal in range(desired):
            pod_name = f"{name}-{ordinal}"
            pod = pods.get(pod_name)
            if pod is None:
                labels = {
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                }
                self._create_pod(stateful_set, name=pod_name, template=spec["template"], labels=labels)
                if ordered:
                    break
            elif pod["status"].get("phase") == "Failed":
                self._delete_pod(stateful_set, pod)
                break
            elif ordered and not self._ready(pod):
                break
        else:
            surplus = sorted(
                (p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) >= desired),
                key=lambda p: p["metadata"]["name"],
            )
            outdated = sorted(
                (p for p in pods.values() if p["metadata"]["labels"].get("controller-revision-hash") != revision),
                key=lambda p: p["metadata"]["name"],
            )
            doomed = surplus or outdated
            if doomed:
                self._delete_pod(stateful_set, doomed[-1])
        pods = {p["metadata"]["name"]: p for p in self._owned("Pod", stateful_set)}
        ready = sum(1 for p in pods.values() if self._ready(p))
        updated = sum(1 for p in pods.values() if p["metadata"]["labels"].get("controller-revision-hash") == revision)
        previous = stateful_set.get("status") or {}
        rolled = updated == desired == len(pods) and ready == desired
        current_revision = revision if rolled or not previous.get("currentRevision") else previous["currentRevision"]
        self._set_status(
            stateful_set,
            {
                "observedGeneration": stateful_set["metadata"]["generation"],
                "replicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": updated if current_revision == revision else len(pods) - updated,
                "updatedReplicas": updated,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        )

    def _daemon_set(self, daemon_set: Obj) -> None:
        spec, name = daemon_set["spec"], daemon_set["metadata"]["name"]
        revision = template_hash(spec["template"])
        pods = self._owned("Pod", daemon_set)
        if not pods:
            self._create_pod(
                daemon_set,
                name=f"{name}-{_random_suffix()}",
                template=spec["template"],
                labels={"controller-revision-hash": revision},
            )
        for pod in pods:
            if (
                pod["metadata"]["labels"].get("controller-revision-hash") != revision
                or pod["status"].get("phase") == "Failed"
            ):
                self._delete_pod(daemon_set, pod)
        pods = self._owned("Pod", daemon_set)
        ready = sum(1 for p in pods if self._ready(p))
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision)
        self._set_status(
            daemon_set,
            {
                "observedGeneration": daemon_set["metadata"]["generation"],
                "desiredNumberScheduled": 1,
                "currentNumberScheduled": len(pods),
                "updatedNumberScheduled": updated,
                "numberMisscheduled": 0,
                "numberReady": ready,
                "numberAvailable": ready,
                **({"numberUnavailable": 1 - ready} if ready < 1 else {}),
            },
        )

    # ------------------------------------------------------------ Jobs

    def _job(self, job: Obj) -> None:
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions") or []):
            return
        pods = self._owned("Pod", job)
        active = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
        succeeded = sum(1 for p in pods if p["status"].get("phase") == "Succeeded")
        restarts = (
            sum(s.get("restartCount", 0) for p in pods for s in p["status"].get("containerStatuses") or [])
            if spec["template"]["spec"].get("restartPolicy") == "OnFailure"
            else 0
        )
        failed = sum(1 for p in pods if p["status"].get("phase") == "Failed") + restarts
        status.setdefault("startTime", now_rfc3339())
        uid, now = job["metadata"]["uid"], time.monotonic()
        started = self._job_started.setdefault(uid, now)
        if self._job_failures.get(uid, (0, now))[0] != failed:
            self._job_failures[uid] = (failed, now)
        last_failure = self._job_failures.get(uid, (0, now))[1]
        deadline = spec.get("activeDeadlineSeconds")
        failure: tuple[str, str] | None = None
        if failed > int(spec.get("backoffLimit", 6)):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline is not None and now - started > self.scaled(float(deadline)):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if succeeded >= int(spec.get("completions", 1)):
            status["conditions"] = [
                self._condition(
                    status,
                    "SuccessCriteriaMet",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                self._condition(
                    status,
                    "Complete",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
            ]
            status["completionTime"] = now_rfc3339()
            self.event(job, reason="Completed", message="Job completed", component="job-controller")
        elif failure is not None:
            for pod in active:
                self._delete_pod(job, pod)
            active = []
            status["conditions"] = [
                self._condition(status, "FailureTarget", True, *failure),
                self._condition(status, "Failed", True, *failure),
            ]
            self.event(job, reason=failure[0], message=failure[1], warning=True, component="job-controller")
        elif not active and (not failed or now >= last_failure + self.scaled(JOB_BACK_OFF * 2 ** (failed - 1))):
            self._create_pod(job, name=f"{job['metadata']['name']}-{_random_suffix()}", template=spec["template"])
            active = [p for p in self._owned("Pod", job) if p["status"].get("phase") not in ("Succeeded", "Failed")]
        status.update(
            active=len(active),
            ready=sum(1 for p in active if self._ready(p)),
            succeeded=succeeded,
            failed=failed,
            terminating=0,
            uncountedTerminatedPods={},
        )
        for zero in ("active", "succeeded", "failed"):
            if not status[zero]:
                del status[zero]
        self._set_status(job, status)

    # ------------------------------------------------------------ scheduler and kubelet

    def _pod(self, pod: Obj) -> None:
        metadata, spec = pod["metadata"], pod["spec"]
        if not spec.get("nodeName"):
            self.server.patch(
                "Pod", metadata["name"], {"spec": {"nodeName": NODE_NAME}}, namespace=metadata["namespace"]
            )
            self.event(
                pod,
                reason="Scheduled",
                message=f"Successfully assigned {metadata['namespace']}/{metadata['name']} to {NODE_NAME}",
                component="default-scheduler",
            )
            return
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        run = self._pods.get(metadata["uid"])
        if run is None:
            self._next_ip += 1
            run = PodRun(
                containers={c["name"]: ContainerRun(name=c["name"], image=c["image"]) for c in spec["containers"]},
                ip=f"10.244.0.{self._next_ip % 250 + 2}",
            )
            self._pods[metadata["uid"]] = run
        for container in spec["containers"]:
            self._container(pod, container, run.containers[container["name"]])
        self._pod_status(pod, run)

    def _unpullable(self, image: str) -> str | None:
        """Why the image cannot be pulled, in the words a container runtime uses; None when it can."""
        first = image.split("/", 1)[0]
        host = first if "/" in image and ("." in first or ":" in first or first == "localhost") else "docker.io"
        hostname = host.split(":")[0]
        failed = f'failed to pull and unpack image "{image}": failed to resolve reference "{image}"'
        if hostname.endswith(".invalid"):
            lookup = f"dial tcp: lookup {hostname}: no such host"
            return f'{failed}: failed to do request: Head "https://{host}/v2/": {lookup}'
        if image in self.missing_images:
            return f"{failed}: {image}: not found"
        return None

    def _missing_reference(self, pod: Obj, container: Obj) -> str | None:
        """A Secret or ConfigMap the container's environment needs but the namespace lacks."""
        namespace = pod["metadata"]["namespace"]
        references: list[tuple[str, Obj]] = []
        for source in container.get("envFrom") or []:
            references += [
                (kind, source[key])
                for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap"))
                if key in source
            ]
        for variable in container.get("env") or []:
            value_from = variable.get("valueFrom") or {}
            references += [
                (kind, value_from[key])
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap"))
                if key in value_from
            ]
        for kind, reference in references:
            if reference.get("optional"):
                continue
            found = self.server.get(kind, reference["name"], namespace=namespace)
            if found is None:
                return f'{kind.lower()} "{reference["name"]}" not found'
            key = reference.get("key")
            if key is not None and key not in (found.get("data") or {}) and key not in (found.get("stringData") or {}):
                return f"couldn't find key {key} in {kind} {namespace}/{reference['name']}"
        return None

    def _container(self, pod: Obj, container: Obj, run: ContainerRun) -> None:
        now = time.monotonic()
        if run.running:
            self._advance(pod, container, run, now)
            return
        if now < run.wake_at or ("terminated" in run.state and not run.restart_pending):
            return
        if run.restart_pending:
            run.restarts += 1
            self._start(pod, container, run, now)
            return
        pull_error = self._unpullable(run.image)
        image = run.image
        if pull_error is not None:
            self.event(pod, reason="Pulling", message=f'Pulling image "{image}"')
            self.event(pod, reason="Failed", message=f'Failed to pull image "{image}": {pull_error}', warning=True)
            if run.waiting_reason == "ErrImagePull":
                wait = self.scaled(_back_off(IMAGE_BACK_OFF, run.pull_attempts))
                run.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
                self.event(pod, reason="BackOff", message=f'Back-off pulling image "{image}"', warning=True)
                self.event(pod, reason="Failed", message="Error: ImagePullBackOff", warning=True)
                run.pull_attempts += 1
            else:
                wait = self.scaled(1.0)
                run.state = {"waiting": {"reason": "ErrImagePull", "message": pull_error}}
                self.event(pod, reason="Failed", message="Error: ErrImagePull", warning=True)
            run.wake_at = now + wait
            return
        missing = self._missing_reference(pod, container)
        if missing is not None:
            run.state = {"waiting": {"reason": "CreateContainerConfigError", "message": missing}}
            run.wake_at = now + self.scaled(10.0)
            self.event(pod, reason="Failed", message=f"Error: {missing}", warning=True)
            return
        if not run.started:
            self.event(pod, reason="Pulled", message=f'Container image "{image}" already present on machine')
        self._start(pod, container, run, now)

    def _start(self, pod: Obj, container: Obj, run: ContainerRun, now: float) -> None:
        metadata = pod["metadata"]
        self.server.restart_log(metadata["namespace"], metadata["name"], run.name)
        self.event(pod, reason="Created", message=f"Created container {run.name}")
        self.event(pod, reason="Started", message=f"Started container {run.name}")
        run.started, run.restart_pending = True, False
        run.state = {"running": {"startedAt": now_rfc3339()}}
        run.steps, run.position, run.last_status, run.wake_at = container_script(container), 0, 0, now
        self._advance(pod, container, run, now)

    def _advance(self, pod: Obj, container: Obj, run: ContainerRun, now: float) -> None:
        """Run the container's script up to its next sleep, or to its end."""
        if run.steps is None or now < run.wake_at:
            return
        metadata = pod["metadata"]
        while run.position < len(run.steps):
            step = run.steps[run.position]
            run.position += 1
            if step.output:
                self.server.append_log(metadata["namespace"], metadata["name"], run.name, step.output)
            run.last_status = step.status
            if step.exits:
                break
            if step.sleep:
                run.wake_at = now + self.scaled(step.sleep)
                return
        self._exited(pod, run, now)

    def _exited(self, pod: Obj, run: ContainerRun, now: float) -> None:
        code = run.last_status
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.state.get("running", {}).get("startedAt"),
            "finishedAt": now_rfc3339(),
            "containerID": f"containerd://{run.name}-{run.restarts}",
        }
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            run.state = {"terminated": terminated}
            return
        run.last_state, run.restart_pending = {"terminated": terminated}, True
        wait = _back_off(CRASH_BACK_OFF, run.restarts)
        run.wake_at = now + self.scaled(wait)
        if wait == 0:
            run.state = {"terminated": terminated}
            return
        metadata = pod["metadata"]
        pod_id = f"{metadata['name']}_{metadata['namespace']}({metadata['uid']})"
        message = f"back-off {wait:.0f}s restarting failed container={run.name} pod={pod_id}"
        run.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        self.event(
            pod,
            reason="BackOff",
            message=f"Back-off restarting failed container {run.name} in pod {pod_id}",
            warning=True,
        )

    def _pod_status(self, pod: Obj, run: PodRun) -> None:
        runs = list(run.containers.values())
        statuses = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"{c.image}@sha256:{template_hash({'image': c.image})}" if c.started else "",
                "ready": c.running,
                "started": c.running,
                "restartCount": c.restarts,
                "state": c.state,
                "lastState": c.last_state,
                **({"containerID": f"containerd://{c.name}-{c.restarts}"} if c.started else {}),
            }
            for c in runs
        ]
        terminated = [c.state["terminated"]["exitCode"] for c in runs if "terminated" in c.state]
        finished = len(terminated) == len(runs) and pod["spec"].get("restartPolicy") != "Always"
        if finished:
            phase = "Succeeded" if not any(terminated) else "Failed"
        elif any(c.started for c in runs):
            phase = "Running"
        else:
            phase = "Pending"
        ready = all(c.running for c in runs)
        previous = pod.get("status") or {}
        unready = [c.name for c in runs if not c.running]
        unready_message = f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition(previous, "PodReadyToStartContainers", True, "", ""),
            self._condition(previous, "Initialized", True, "", ""),
            self._condition(
                previous,
                "Ready",
                ready,
                "" if ready else "ContainersNotReady",
                "" if ready else unready_message,
            ),
            self._condition(
                previous,
                "ContainersReady",
                ready,
                "" if ready else "ContainersNotReady",
                "" if ready else unready_message,
            ),
            self._condition(previous, "PodScheduled", True, "", ""),
        ]
        for condition in conditions:
            for empty in ("reason", "message"):
                if not condition[empty]:
                    del condition[empty]
        self._set_status(
            pod,
            {
                "phase": phase,
                "conditions": conditions,
                "hostIP": "10.0.0.2",
                "podIP": run.ip,
                "podIPs": [{"ip": run.ip}],
                "startTime": run.start_time,
                "containerStatuses": statuses,
                "qosClass": "BestEffort",
            },
        )
