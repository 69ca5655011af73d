"""A preview's life between deploys: activity, expiry, keep, sleep and wake, kept in its namespace.

Every limit counts from the last activity (a push, a command, a deploy, a wake). The deploy
records the limits its config set (ttl, sleep_after, the keep label) beside the times they give,
so a command between deploys, or gc, can move them on without reading any repo's config.

Sleeping scales the preview's Deployments and StatefulSets to zero after writing down the
replicas to wake them to, in that order: a crash in between leaves a preview that is written
down as asleep while it still runs, which a wake puts right; never one that sleeps forgotten.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from previewbot import naming
from previewbot.core.ports import Cluster, Progress
from previewbot.model import NamespaceInfo, ObjectRef, RolloutResult

log = logging.getLogger("previewbot")


def limits(
    *, ttl: float | None, sleep_after: float | None, keep_label: str | None, now: datetime
) -> dict[str, str | None]:
    """The annotations a deploy writes: its limits, and the times they give counted from now."""
    return {
        naming.TTL_ANNOTATION: _seconds(ttl),
        naming.SLEEP_AFTER_ANNOTATION: _seconds(sleep_after),
        naming.KEEP_LABEL_ANNOTATION: keep_label or None,
        **_moved_on(ttl=ttl, sleep_after=sleep_after, now=now),
    }


def touch(cluster: Cluster, namespace: NamespaceInfo, *, now: datetime) -> NamespaceInfo:
    """Count now as activity: the preview's expiry and bedtime move on by its own limits. Returns the
    namespace as it is now."""
    notes = namespace.annotations
    moved = _moved_on(
        ttl=_read_seconds(notes.get(naming.TTL_ANNOTATION)),
        sleep_after=_read_seconds(notes.get(naming.SLEEP_AFTER_ANNOTATION)),
        now=now,
    )
    return _annotated(cluster, namespace, moved)


def keep(cluster: Cluster, namespace: NamespaceInfo, *, on: bool) -> NamespaceInfo:
    """Pin the preview (no expiry, no sleep) or unpin it. Returns the namespace as it is now."""
    return _annotated(cluster, namespace, {naming.KEEP_ANNOTATION: "true" if on else None})


def _annotated(cluster: Cluster, namespace: NamespaceInfo, changes: dict[str, str | None]) -> NamespaceInfo:
    """Merge-patch the namespace's annotations, and the namespace as the patch leaves it (no second read)."""
    cluster.annotate_namespace(namespace.name, annotations=changes)
    merged = {**namespace.annotations, **changes}
    return replace(namespace, annotations={key: value for key, value in merged.items() if value is not None})


def is_kept(namespace: NamespaceInfo, *, pr_labels: tuple[str, ...] = ()) -> bool:
    keep_label = namespace.annotations.get(naming.KEEP_LABEL_ANNOTATION)
    return namespace.annotations.get(naming.KEEP_ANNOTATION) == "true" or bool(keep_label and keep_label in pr_labels)


def asleep(namespace: NamespaceInfo) -> dict[ObjectRef, int] | None:
    """The replicas a sleeping preview wakes to; None when it is awake."""
    recorded = namespace.annotations.get(naming.SLEEPING_ANNOTATION)
    if not recorded:
        return None
    try:
        counts = json.loads(recorded)
    except json.JSONDecodeError:
        counts = {}
    replicas = {}
    for key, count in counts.items() if isinstance(counts, dict) else ():
        kind, _, name = str(key).partition("/")
        if kind and name and isinstance(count, int):
            replicas[ObjectRef(api_version="apps/v1", kind=kind, name=name, namespace=namespace.name)] = count
    return replicas


def sleep(cluster: Cluster, namespace: NamespaceInfo, *, label_selector: str) -> dict[ObjectRef, int]:
    """Scale the preview's workloads to zero, remembering their replicas first; asleep already, nothing."""
    remembered = asleep(namespace)
    if remembered is not None:
        return remembered
    replicas = cluster.replicas(namespace.name, label_selector=label_selector)
    record = json.dumps({f"{ref.kind}/{ref.name}": count for ref, count in replicas.items()}, sort_keys=True)
    cluster.annotate_namespace(namespace.name, annotations={naming.SLEEPING_ANNOTATION: record})
    cluster.scale(namespace.name, dict.fromkeys(replicas, 0))
    log.info("%s sleeps: %s scaled to zero", namespace.name, ", ".join(map(str, replicas)) or "nothing")
    return replicas


def wake(
    cluster: Cluster, namespace: NamespaceInfo, *, now: datetime, timeout: float, progress: Progress | None = None
) -> RolloutResult | None:
    """Scale a sleeping preview back and wait until it is ready; None when it was not asleep."""
    replicas = asleep(namespace)
    if replicas is None:
        return None
    cluster.scale(namespace.name, replicas)
    result = cluster.wait_rollout(namespace.name, list(replicas), timeout=timeout, progress=progress)
    cluster.annotate_namespace(namespace.name, annotations={naming.SLEEPING_ANNOTATION: None})
    touch(cluster, namespace, now=now)
    return result


def expires_at(namespace: NamespaceInfo) -> datetime | None:
    return naming.parse_time(namespace.annotations.get(naming.EXPIRES_AT_ANNOTATION))


def _moved_on(*, ttl: float | None, sleep_after: float | None, now: datetime) -> dict[str, str | None]:
    return {
        naming.LAST_ACTIVITY_ANNOTATION: naming.format_time(now),
        naming.EXPIRES_AT_ANNOTATION: naming.format_time(now + timedelta(seconds=ttl)) if ttl else None,
        naming.SLEEP_AT_ANNOTATION: naming.format_time(now + timedelta(seconds=sleep_after)) if sleep_after else None,
    }


def _seconds(value: float | None) -> str | None:
    return str(int(value)) if value else None


def _read_seconds(text: str | None) -> float | None:
    return float(text) if text and text.isdigit() else None
