"""What the deliveries missed while no server listened: found by comparing GitHub with the cluster.

For each installed repo: a sweep (the core tears down previews whose PR closed, or whose ttl ran
out), and a deploy of each open PR whose preview is at another commit than the PR's head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from previewbot import naming
from previewbot.core.ports import Cluster, GitHub
from previewbot.model import Collect, Deploy
from previewbot.server.working import Job, job_key

log = logging.getLogger("previewbot.server")

DELIVERY = "resync"


def resync_jobs(*, repositories: list[str], github: Callable[[str], GitHub], cluster: Cluster) -> tuple[list[Job], int]:
    """The jobs that bring every installed repo's previews up to date, and how many previews there are."""
    jobs: list[Job] = []
    active = 0
    for repo in repositories:
        previews = {
            namespace.labels.get(naming.PR_LABEL, ""): namespace
            for namespace in cluster.namespaces(label_selector=naming.owned_selector(repo=repo))
            if not namespace.terminating
        }
        active += len(previews)
        jobs.append(Job(delivery=DELIVERY, key=repo.lower(), work=Collect(repo=repo)))
        for pr in github(repo).open_pull_requests(repo):
            preview = previews.get(str(pr.number))
            if preview is not None and preview.annotations.get(naming.HEAD_SHA_ANNOTATION) != pr.head_sha:
                log.info("resync: %s#%d was pushed to %s meanwhile", repo, pr.number, pr.head_sha[:7])
                deploy = Deploy(pr=pr, trigger="resync")
                jobs.append(Job(delivery=DELIVERY, key=job_key(deploy), work=deploy))
    return jobs, active
