"""`previewbot serve` as a real process on a loopback socket: it starts, answers, and on SIGTERM stops
taking work, lets the running job end, gives its Lease back and exits."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from previewbot import naming
from previewbot.model import PrRef
from tests.app_keys import APP_ID, INSTALLATION_ID, key_pair
from tests.harness import DEFAULT_BRANCH, PR_NUMBER, REPO, payload, pr_event, preview_config, web_deployment

SECRET = b"a webhook secret for the process test"
SHA = "5" * 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(url: str, event: str, body: dict[str, Any], *, delivery: str | None = None) -> httpx.Response:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    sent = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    return httpx.post(f"{url}/webhook", content=raw, headers=sent, timeout=10)


@pytest.fixture
def serving(
    github: Any, kube: Any, tmp_path: Path, prefix: str, site: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    private, public = key_pair()
    github.install_app(app_id=APP_ID, public_key=public, installations={INSTALLATION_ID: [REPO]})
    github.set_permission(REPO, "Codertocat", "admin")
    for ref in (SHA, DEFAULT_BRANCH):  # the namespace prefix comes from the default branch
        github.add_file(REPO, ".preview.yml", preview_config(prefix=prefix, site=site), ref=ref)
    github.add_file(REPO, "deploy/web.yaml", web_deployment(), ref=SHA)
    github.update_pull(REPO, PR_NUMBER, head_sha=SHA)
    (tmp_path / "key.pem").write_text(private)
    (tmp_path / "secret").write_bytes(SECRET)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "previewbot",
            "serve",
            f"--app-id={APP_ID}",
            f"--private-key-file={tmp_path / 'key.pem'}",
            f"--webhook-secret-file={tmp_path / 'secret'}",
            f"--api-url={github.url}",
            f"--kubeconfig={kube.kubeconfig}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--lease-namespace=default",
            f"--holder={kube.unique('process')}",
            "--no-resync",  # a resync sweeps the repo's previews: on a shared cluster, other runs' too
            "--shutdown-grace=60",
            "--log-format=json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        if not kube.emulated:
            core = client.CoreV1Api(kube.api_client())
            for namespace in core.list_namespace(label_selector=naming.MANAGED_BY_LABEL).items:
                if namespace.metadata.name.startswith(f"{prefix}-"):  # this test's only: the cluster is shared
                    core.delete_namespace(namespace.metadata.name)


def test_sigterm_lets_the_running_deploy_end_releases_its_lease_and_exits(
    serving: tuple[subprocess.Popen[str], str], kube: Any, prefix: str
) -> None:
    process, url = serving
    assert post(url, "ping", payload("ping")).status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    assert 'previewbot_deliveries_total{event="ping",outcome="ping"} 1.0' in metrics

    delivery = str(uuid.uuid4())
    assert post(url, "pull_request", pr_event("opened", sha=SHA), delivery=delivery).status_code == 202
    coordination = client.CoordinationV1Api(kube.api_client())
    lease = naming.lease_name(PrRef(repo=REPO, number=PR_NUMBER))
    deadline = time.monotonic() + 30
    while not any(item.metadata.name == lease for item in coordination.list_namespaced_lease("default").items):
        assert time.monotonic() < deadline, "the job never took the PR's lease"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0
    lines = [json.loads(line) for line in (process.stderr.read() if process.stderr else "").splitlines()]
    messages = [line["message"] for line in lines]
    assert any("stopping" in message for message in messages)
    assert any(message.startswith("previewbot serve: stopped") for message in messages)
    assert not any("jobs still running" in message for message in messages)
    job_lines = [line for line in lines if line["delivery"] == delivery]
    assert any("deploying" in line["message"] for line in job_lines), "the core's lines name the delivery"
    assert {line["pr"] for line in job_lines} >= {f"{REPO}#{PR_NUMBER}".lower()}
    assert any(line["step"] == "Apply manifests" for line in job_lines), "and the step they are in"

    held = coordination.read_namespaced_lease(lease, "default").spec
    assert not held.holder_identity, "the lease was given back"
    coordination.delete_namespaced_lease(lease, "default")
    namespace = client.CoreV1Api(kube.api_client()).read_namespace(
        naming.namespace_name(prefix=prefix, repo=REPO, number=PR_NUMBER)
    )
    assert namespace.metadata.annotations[naming.STATUS_ANNOTATION] == "ready", "the running deploy ended"
