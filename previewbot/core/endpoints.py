"""The ways into a preview from outside the cluster, looked up once its workloads have rolled out.

Only the kinds the manifests make are asked for, one list request each: a preview without an
Ingress or an external Service costs no request at all.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from previewbot.core.ports import Cluster
from previewbot.errors import PreviewbotError
from previewbot.model import Endpoint, EndpointKind

log = logging.getLogger("previewbot")


def exposed_kinds(objects: Iterable[Mapping[str, Any]]) -> frozenset[EndpointKind]:
    """The kinds of endpoint among the objects: Ingresses, and Services of type LoadBalancer or NodePort."""
    kinds = set()
    for obj in objects:
        if obj.get("kind") == "Ingress":
            kinds.add(EndpointKind.INGRESS)
        elif obj.get("kind") == "Service":
            service_type = (obj.get("spec") or {}).get("type")
            if service_type in (EndpointKind.LOAD_BALANCER, EndpointKind.NODE_PORT):
                kinds.add(EndpointKind(service_type))
    return frozenset(kinds)


def kinds_among_applied(applied: Iterable[tuple[str, str]]) -> frozenset[EndpointKind]:
    """The kinds of endpoint the applied (apiVersion, kind)s may hold, when the objects themselves are not at hand."""
    kinds = {kind for _, kind in applied}
    services = {EndpointKind.LOAD_BALANCER, EndpointKind.NODE_PORT} if "Service" in kinds else set()
    return frozenset({EndpointKind.INGRESS} if "Ingress" in kinds else set()) | services


def endpoints_of(cluster: Cluster, namespace: str, kinds: Collection[EndpointKind]) -> tuple[Endpoint, ...]:
    """The endpoints of those kinds in namespace; none, with a warning in the log, when the cluster will not say.

    The preview runs whether or not its report can list them: a failed look-up fails nothing.
    """
    if not kinds:
        return ()
    try:
        return tuple(cluster.endpoints(namespace, kinds=kinds))
    except PreviewbotError as error:
        log.warning("could not list the preview's endpoints: %s", error)
        return ()
