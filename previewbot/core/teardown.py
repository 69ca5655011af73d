"""Deleting previews: only namespaces whose labels say previewbot made them for this very preview."""

from __future__ import annotations

import logging

from previewbot import naming
from previewbot.core.ports import Cluster
from previewbot.errors import NotFound
from previewbot.model import OnDemandRef

log = logging.getLogger("previewbot")


def delete_on_demand(cluster: Cluster, ref: OnDemandRef) -> list[str]:
    """Ask for the deletion of the repo's on-demand preview called ref.name; the namespaces asked to go.

    One already being deleted is not asked again, and not counted.
    """
    deleted = []
    for namespace in cluster.namespaces(label_selector=naming.on_demand_selector(repo=ref.repo, name=ref.name)):
        if not naming.is_on_demand(namespace, repo=ref.repo, name=ref.name):
            continue  # the selector said so, but safety does not rest on one check
        if namespace.terminating:
            log.info("namespace %s is already being deleted", namespace.name)
            continue
        log.info("deleting namespace %s", namespace.name)
        try:
            cluster.delete_namespace(namespace.name)
        except NotFound:
            log.info("namespace %s was already gone", namespace.name)
            continue
        deleted.append(namespace.name)
    return deleted
