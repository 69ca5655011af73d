"""The webhook server's acknowledgements on loopback: `make bench`.

The receiving side runs in a process of its own (benchmarks/webhook_stub.py) with the workers'
work stubbed; a bounded load generator here sends signed copies of GitHub's pull_request example,
each with a delivery id of its own. Measured: acknowledgements per second at saturation, the
p50/p99 acknowledgement latency at a fixed 200 deliveries per second, and the server's peak memory.
Targets on 2 cores: >= 500 a second, p99 < 50 ms, < 150 MB. The numbers go into the benchmark's
extra_info (and `--benchmark-json`); they are measured, not asserted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import payload

SECRET = "benchmark-secret"
ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(payload("pull_request.opened")).encode()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.webhook_stub", str(port), SECRET], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/metrics", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url, process.pid
    process.terminate()
    process.wait(10)


def send(client: httpx.Client, url: str) -> float:
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": SIGNATURE,
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    answer = client.post(f"{url}/webhook", content=BODY, headers=headers)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 202, answer.text
    return elapsed


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_acknowledgements_per_second_at_saturation(benchmark: Any, server: tuple[str, int]) -> None:
    url, pid = server
    count, senders = 2000, 16

    def saturate() -> float:
        per_sender = count // senders

        def run() -> None:
            with httpx.Client() as client:
                for _ in range(per_sender):
                    send(client, url)

        threads = [threading.Thread(target=run) for _ in range(senders)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return per_sender * senders / (time.perf_counter() - started)

    rate = benchmark.pedantic(saturate, rounds=1, iterations=1)
    benchmark.extra_info.update(
        acknowledgements_per_second=round(rate), body_bytes=len(BODY), peak_memory_mb=round(peak_memory_mb(pid))
    )
    print(f"\n{rate:.0f} acknowledgements/s, body {len(BODY)} bytes, peak {peak_memory_mb(pid):.0f} MB")


def test_acknowledgement_latency_at_200_a_second(benchmark: Any, server: tuple[str, int]) -> None:
    url, pid = server
    rate, seconds, senders = 200, 5, 8

    def paced() -> list[float]:
        latencies: list[float] = []
        lock = threading.Lock()
        start = time.perf_counter() + 0.2
        total = rate * seconds

        def run(offset: int) -> None:
            with httpx.Client() as client:
                for index in range(offset, total, senders):
                    delay = start + index / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    elapsed = send(client, url)
                    with lock:
                        latencies.append(elapsed)

        threads = [threading.Thread(target=run, args=(offset,)) for offset in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies

    latencies = sorted(benchmark.pedantic(paced, rounds=1, iterations=1))
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    benchmark.extra_info.update(p50_ms=round(p50, 1), p99_ms=round(p99, 1), peak_memory_mb=round(peak_memory_mb(pid)))
    print(f"\nat {rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, peak {peak_memory_mb(pid):.0f} MB")
