"""`python -m benchmarks.webhook_stub PORT SECRET`: the webhook server's receiving side on a loopback port,
with the workers' work stubbed at the port boundary (each job is taken off the queue and dropped)."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from previewbot.server.metrics import CONTENT_TYPE, Metrics
from previewbot.server.receiving import WebhookEndpoint
from previewbot.server.working import WorkQueue


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2].encode()
    metrics = Metrics()
    queue = WorkQueue(lambda job: None, workers=2, capacity=100_000, metrics=metrics)
    queue.start()
    endpoint = WebhookEndpoint(secret=secret, inbox=queue, metrics=metrics)

    async def exposition(_request: object) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    app = Starlette(routes=[Route("/webhook", endpoint.receive, methods=["POST"]), Route("/metrics", exposition)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
