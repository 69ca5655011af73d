"""On-demand previews: a checkout deployed from a terminal, before (or without) a pull request.

The deploy is a PR's deploy run, over the cluster alone: its reports go to the sink the front
door gives (a terminal), and nothing is written to GitHub. The namespace carries a PR preview's
labels and annotations with the on-demand label in place of the PR's, so the sweep and the time
limit (`ttl`, else ON_DEMAND_TTL) hold for it too. The person who runs it is trusted as the
config's author: the checkout's config sets the Pod Security level, and the Secrets it names
are copied, as far as that person's own credentials on the cluster may read them. The manifest
policy holds as for a PR of the repo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from previewbot import naming, policy
from previewbot.config import PreviewConfig, load_config_file
from previewbot.core import teardown
from previewbot.core.ports import Cluster, CommandRunner, UrlProbe
from previewbot.core.previews import DeployRun, Outcome, Ports, Settings
from previewbot.core.reporting import Outbox, Reporter, Sink
from previewbot.core.trust import Trusted
from previewbot.errors import UserError
from previewbot.model import ON_DEMAND_TTL, Down, OnDemandIntent, Phase, PreviewReport, Up
from previewbot.redact import redactor

log = logging.getLogger("previewbot")


class OnDemandPreviews:
    """Runs `up` and `down`. One instance per run; holds no state between runs."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        probe: UrlProbe,
        settings: Settings,
        sink: Sink,
        runner: CommandRunner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ports = Ports(cluster=cluster, probe=probe, runner=runner)
        self._cluster = cluster
        self._settings = settings
        self._sink = sink
        self._clock = clock
        self._outbox = Outbox()

    def handle(self, intent: OnDemandIntent) -> Outcome:
        """Run the intent; it is done when its report has been shown (or report_wait ran out)."""
        try:
            match intent:
                case Up():
                    return self.up(intent)
                case Down():
                    return self.down(intent)
            raise AssertionError(f"unhandled intent {intent!r}")
        finally:
            self._outbox.flush(timeout=self._settings.report_wait)

    def up(self, intent: Up) -> Outcome:
        """Deploy the checkout as its on-demand preview; run again, only what changed changes."""
        preview = intent.preview
        reporter = Reporter(
            sink=self._sink,
            report=PreviewReport(ref=preview.ref, phase=Phase.PENDING, head_sha=preview.head_sha),
            outbox=self._outbox,
            clock=self._clock,
        )
        try:
            config = _for_up(load_config_file(self._settings.workspace, self._settings.config_path), intent)
        except UserError as error:
            message = redactor.redact(str(error))
            log.error("%s", message)
            return Outcome(
                status=Phase.FAILED, message=message, report=reporter.update(phase=Phase.FAILED, error=message)
            )
        namespace = naming.namespace_of(preview, prefix=config.namespace.prefix)
        secrets = tuple(config.namespace.secrets)
        return DeployRun(
            ports=self._ports,
            secrets=secrets,
            manifest_policy=policy.ManifestPolicy(
                namespace=namespace,
                pod_security=config.namespace.pod_security,
                isolated=config.namespace.network_policy == "isolate",
                copied_secrets=frozenset(secret.copied_as for secret in secrets),
            ),
            settings=self._settings,
            clock=self._clock,
            pr=preview,
            config=config,
            # Whoever runs `previewbot up` from a checkout runs it with their own credentials: its config is trusted.
            trusted=Trusted(config=config),
            approved_by=None,
            reporter=reporter,
            namespace=namespace,
        ).run("up")

    def down(self, intent: Down) -> Outcome:
        """Delete the on-demand preview's namespace: only one labelled as this very preview."""
        ref = intent.ref
        deleted = teardown.delete_on_demand(self._cluster, ref)
        if not deleted:
            message = f"{ref.repo} has no on-demand preview called {ref.name}: nothing to delete"
            return Outcome(status="ignored", message=message)
        message = f"deleting {', '.join(deleted)}; Kubernetes removes what is in it in the background"
        return Outcome(status=Phase.DESTROYED, message=message, namespace=deleted[0])


def _for_up(config: PreviewConfig, intent: Up) -> PreviewConfig:
    """The config as this `up` asked: images pinned to --tag, its time limit, tests or none."""
    changes: dict[str, object] = {"ttl": intent.ttl or config.ttl or ON_DEMAND_TTL}
    if intent.tag is not None:
        changes["images"] = [image.model_copy(update={"tag": intent.tag}) for image in config.images]
    if not intent.tests:
        changes["tests"] = None
    return config.model_copy(update=changes)
