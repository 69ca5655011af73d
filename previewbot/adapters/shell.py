"""Runs the repo's test command on the Action's runner (implements ports.CommandRunner)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping

OUTPUT_KEPT = 256 * 1024


class ShellRunner:
    """Runs a command line in bash, as a workflow's `run:` step would, and keeps the end of its output.

    The Action's own inputs (INPUT_*: the token, the kubeconfig) are not passed on to the command.
    """

    def run(self, command: str, *, env: Mapping[str, str], cwd: str, timeout: float) -> tuple[int | None, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("INPUT_")}
        with subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env={**inherited, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that a timeout stops the whole process group
        ) as process:
            try:
                output, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                return None, _text(output)
            return process.returncode, _text(output)


def _text(output: bytes | None) -> str:
    return (output or b"")[-OUTPUT_KEPT:].decode(errors="replace")
