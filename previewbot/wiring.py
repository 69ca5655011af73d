"""Builds the core with real adapters, for the front doors (the Action and the CLI).

The adapters and the core are imported by `build_previews`, when a command needs them: a front
door that only logs or prints help never pays for loading PyGithub or the kubernetes client.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from previewbot.redact import RedactingFilter, redactor

if TYPE_CHECKING:
    from previewbot.core.ondemand import OnDemandPreviews
    from previewbot.core.ports import Cluster
    from previewbot.core.previews import Previews, Settings
    from previewbot.core.reporting import Sink

_PLAIN_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
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
    register_kubeconfig(connection.kubeconfig)


def register_kubeconfig(kubeconfig: str | None) -> None:
    """Teach the redactor the credentials in a kubeconfig (a path or the file's text)."""
    from previewbot.adapters.kubernetes import KubeconfigError, read_kubeconfig

    if not kubeconfig:
        return
    try:
        document = read_kubeconfig(kubeconfig)
    except KubeconfigError:
        return  # connecting says what is wrong with it
    for credential in kubeconfig_credentials(document):
        redactor.add(credential)


def kubeconfig_credentials(document: Mapping[str, Any]) -> list[str]:
    """Every secret a kubeconfig's users hold: their keys and tokens, their exec plugin's arguments
    and environment values, and their auth provider's tokens and client secret."""
    found: list[Any] = []
    users = document.get("users")
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        found += [user.get(key) for key in KUBECONFIG_CREDENTIALS]
        plugin = user.get("exec")
        if isinstance(plugin, dict):
            args = plugin.get("args")
            # A flag's own name is no secret; its value is, whether in the same argument or the next. A
            # plain word (a subcommand such as `get-token`) is not registered: masking it would hide
            # every such word in the log, not a secret.
            for arg in args if isinstance(args, list) else []:
                value = arg.partition("=")[2] if isinstance(arg, str) and arg.startswith("-") else arg
                if not (isinstance(value, str) and _PLAIN_WORD.fullmatch(value)):
                    found.append(value)
            env = plugin.get("env")
            found += [item.get("value") for item in env if isinstance(item, dict)] if isinstance(env, list) else []
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, dict) else None
        if isinstance(config, dict):
            found += [value for key, value in config.items() if "token" in key or "secret" in key]
    return [value for value in found if isinstance(value, str) and value]


def build_previews(
    connection: Connection, settings: Settings, *, with_runner: bool, with_cluster: bool = True
) -> Previews:
    """The core over GitHub, the cluster (none without with_cluster) and this machine's shell (with with_runner)."""
    from previewbot.adapters.github import GitHubApi
    from previewbot.adapters.http import HttpProbe
    from previewbot.adapters.kubernetes import connect, unreachable
    from previewbot.adapters.shell import ShellRunner
    from previewbot.core.previews import Previews

    register_secrets(connection)
    return Previews(
        github=GitHubApi.from_env(connection.token, api_url=connection.api_url),
        # The Action passes empty inputs as empty strings: they mean "not given".
        cluster=connect(kubeconfig=connection.kubeconfig or None, context=connection.kube_context or None)
        if with_cluster
        else unreachable(),
        probe=HttpProbe(),
        settings=settings,
        runner=ShellRunner() if with_runner else None,
    )


def connect_cluster(kubeconfig: str | None, context: str | None) -> Cluster:
    """The cluster alone, for the commands that need no GitHub (list, down, up)."""
    from previewbot.adapters.kubernetes import connect

    register_kubeconfig(kubeconfig)
    return connect(kubeconfig=kubeconfig or None, context=context or None)


def build_on_demand(cluster: Cluster, settings: Settings, *, sink: Sink) -> OnDemandPreviews:
    """The on-demand core: the cluster, the URL probe and this machine's shell for tests.command."""
    from previewbot.adapters.http import HttpProbe
    from previewbot.adapters.shell import ShellRunner
    from previewbot.core.ondemand import OnDemandPreviews

    return OnDemandPreviews(cluster=cluster, probe=HttpProbe(), settings=settings, sink=sink, runner=ShellRunner())
