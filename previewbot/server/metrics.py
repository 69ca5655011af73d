"""The server's Prometheus metrics, in a registry of their own so two servers in one process stay apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "previewbot_deliveries",
            "Webhook deliveries received, by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge("previewbot_queue_depth", "Jobs waiting for a worker", registry=self.registry)
        self.jobs = Counter(
            "previewbot_jobs", "Jobs run, by kind and outcome", ["kind", "outcome"], registry=self.registry
        )
        self.deploy_seconds = Histogram(
            "previewbot_deploy_duration_seconds",
            "How long a deploy took, from the job's start to its end",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 2400),
            registry=self.registry,
        )
        self.active_previews = Gauge(
            "previewbot_active_previews", "Preview namespaces seen at the last resync", registry=self.registry
        )
        self.rate_limit_remaining = Gauge(
            "previewbot_github_rate_limit_remaining",
            "GitHub API requests left in the current window, as GitHub last said",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
