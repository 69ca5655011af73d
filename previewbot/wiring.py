"""Builds the core with real adapters, for the front doors (the Action and the CLI).

The adapters and the core are imported by `build_previews`, when a command needs them: a front
door that only logs or prints help never pays for loading PyGithub or the kubernetes client.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from previewbot.redact import RedactingFilter, redactor

if TYPE_CHECKING:
    from previewbot.core.previews import Previews, Settings

KUBECONFIG_CREDENTIALS = ("token", "password", "client-key-data", "client-certificate-data")


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How to reach GitHub and the cluster."""

    token: str
    api_url: str | None = None  # None: GITHUB_API_URL, else github.com
    kubeconfig: str | None = None  # a path or the file's text; None: KUBECONFIG or in-cluster
    kube_context: str | None = None


def setup_logging(*, verbose: bool = False) -> None:
    """Log lines to stderr, each passed through the redactor first."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "kubernetes", "github", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def register_secrets(connection: Connection) -> None:
    """Teach the redactor the token and the kubeconfig's credentials before anything is logged."""
    redactor.add(connection.token)
    if not connection.kubeconfig:
        return
    import yaml

    text = connection.kubeconfig
    if "\n" not in text and Path(text).is_file():
        text = Path(text).read_text()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    users = document.get("users", []) if isinstance(document, dict) else []
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user", {}) if isinstance(entry, dict) else {}
        for key in KUBECONFIG_CREDENTIALS:
            value = user.get(key) if isinstance(user, dict) else None
            if isinstance(value, str):
                redactor.add(value)


def build_previews(connection: Connection, settings: Settings, *, with_runner: bool) -> Previews:
    from previewbot.adapters.github import GitHubApi
    from previewbot.adapters.http import HttpProbe
    from previewbot.adapters.kubernetes import connect
    from previewbot.adapters.shell import ShellRunner
    from previewbot.core.previews import Previews

    register_secrets(connection)
    return Previews(
        github=GitHubApi.from_env(connection.token, api_url=connection.api_url),
        # The Action passes empty inputs as empty strings: they mean "not given".
        cluster=connect(kubeconfig=connection.kubeconfig or None, context=connection.kube_context or None),
        probe=HttpProbe(),
        settings=settings,
        runner=ShellRunner() if with_runner else None,
    )
