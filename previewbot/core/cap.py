"""The cap on a repo's live previews (`max_previews`), and what happens to a PR that finds it reached.

A preview is live while its workloads run: a sleeping one holds no slot, nor does one that waits
in line. The line is kept where the rest of previewbot's state is, on the waiting PR's namespace
(an empty one, labelled like any preview), ordered by when each PR joined it; so the place of a
PR survives restarts, and closing a waiting PR takes it out of line like any preview.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from previewbot import naming
from previewbot.core import gc, lifetime
from previewbot.core.ports import Cluster
from previewbot.model import NamespaceInfo


class Policy(enum.StrEnum):
    QUEUE = "queue"
    EVICT_OLDEST_IDLE = "evict-oldest-idle"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """Whether a PR's preview may run now; if not, its place in line (None when refused)."""

    admitted: bool
    live: int  # the repo's live previews, this PR's not counted
    limit: int | None
    place: int | None = None
    evict: NamespaceInfo | None = None  # the idle preview that must sleep to make room


def previews_of(cluster: Cluster, repo: str) -> list[NamespaceInfo]:
    """The repo's preview namespaces that previewbot owns and that are not going away."""
    found = cluster.namespaces(label_selector=naming.owned_selector(repo=repo))
    return [ns for ns in found if not ns.terminating and gc.owner_repo(ns) == repo]


def is_live(namespace: NamespaceInfo) -> bool:
    """Its workloads run: it neither waits in line nor sleeps."""
    return _place(namespace) is None and lifetime.asleep(namespace) is None


def admit(previews: Sequence[NamespaceInfo], *, name: str, limit: int | None, policy: Policy) -> Admission:
    """Whether the preview namespace `name` may deploy among the repo's previews, under the cap."""
    others = [ns for ns in previews if ns.name != name]
    live = [ns for ns in others if is_live(ns)]
    own = next((ns for ns in previews if ns.name == name), None)
    place_of_own = _place(own) if own is not None else None
    # Those who joined the line before this PR have the first claim on a free slot.
    ahead = [
        ns for ns in others if (place := _place(ns)) is not None and (place_of_own is None or place < place_of_own)
    ]
    if limit is None or len(live) + len(ahead) < limit or (own is not None and is_live(own)):
        return Admission(admitted=True, live=len(live), limit=limit)
    if policy is Policy.EVICT_OLDEST_IDLE:
        idle = [ns for ns in live if not lifetime.is_kept(ns)]
        if idle:
            oldest = min(idle, key=_last_activity)
            return Admission(admitted=True, live=len(live), limit=limit, evict=oldest)
    if policy is Policy.REFUSE:
        return Admission(admitted=False, live=len(live), limit=limit)
    return Admission(admitted=False, live=len(live), limit=limit, place=len(ahead) + 1)


def line(previews: Sequence[NamespaceInfo]) -> list[NamespaceInfo]:
    """The waiting previews, first in line first."""
    places = {ns.name: place for ns in previews if (place := _place(ns)) is not None}
    return sorted((ns for ns in previews if ns.name in places), key=lambda ns: places[ns.name])


def free_slots(previews: Sequence[NamespaceInfo]) -> int | None:
    """How many more of the repo's previews may be live now; None when there is no cap.

    Each waiting preview wrote down the cap it waits under, so no repo's config needs reading here:
    the first in line's counts.
    """
    waiting = line(previews)
    limit = waiting[0].annotations.get(naming.MAX_PREVIEWS_ANNOTATION, "") if waiting else ""
    if not limit.isdigit():
        return None
    return max(int(limit) - sum(1 for ns in previews if is_live(ns)), 0)


def _place(namespace: NamespaceInfo) -> tuple[datetime, str] | None:
    """Where a waiting preview stands in line: by when it joined, then by name (of two that joined together)."""
    joined = naming.parse_time(namespace.annotations.get(naming.QUEUED_AT_ANNOTATION))
    return (joined, namespace.name) if joined is not None else None


def _last_activity(namespace: NamespaceInfo) -> datetime:
    return naming.parse_time(namespace.annotations.get(naming.LAST_ACTIVITY_ANNOTATION)) or _LONG_AGO


_LONG_AGO = datetime.min.replace(tzinfo=UTC)
