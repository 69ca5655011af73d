"""The command line starts without loading what the command does not use.

Each case runs in a fresh interpreter, so what it imported is what the command needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SDKS = frozenset({"github", "kubernetes", "httpx", "requests", "urllib3"})

# Runs the command as the console script does, then reports the top-level packages it imported.
PROBE = """
import json, sys
from previewbot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.partition('.')[0] for name in sys.modules})), file=sys.stderr)
"""


def imported_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60, env=env
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [["--help"], ["plan", "--help"], ["deploy", "--help"], ["action", "--help"], ["up", "--help"], ["list", "--help"]],
)
def test_help_loads_no_sdk_and_no_pydantic(args: list[str]) -> None:
    loaded = imported_by(*args)

    assert not loaded & (SDKS | {"pydantic", "yaml"})


def test_plan_loads_no_sdk() -> None:
    loaded = imported_by("plan", str(ROOT / "examples" / "hello"))

    assert "pydantic" in loaded  # it did read the config
    assert not loaded & SDKS


def test_the_helm_engine_loads_only_for_a_chart() -> None:
    assert "helm_python" not in imported_by("plan", str(ROOT / "examples" / "hello"))
    assert "helm_python" in imported_by("plan", str(ROOT / "examples" / "hello-helm"))


def test_the_action_loads_no_http_client_before_it_has_a_url_to_check(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    env = {
        **os.environ,
        "GITHUB_EVENT_NAME": "ping",
        "GITHUB_EVENT_PATH": str(ROOT / "tests" / "fixtures" / "github" / "ping.json"),
        "GITHUB_REPOSITORY": "Codertocat/Hello-World",
        "INPUT_TOKEN": "not-used",
        "INPUT_KUBECONFIG": str(kubeconfig),
    }

    loaded = imported_by("action", env=env)

    assert {"github", "kubernetes"} <= loaded  # it did wire the adapters
    assert "httpx" not in loaded
