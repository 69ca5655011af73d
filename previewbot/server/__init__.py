"""The webhook server: previewbot as a GitHub App, serving every repo it is installed on.

receiving.py  a delivery in: signature, size, JSON, acknowledgement, hand-over; no GitHub or cluster call
working.py    the work queue: bounded, a small pool of workers, one PR's work in order, newer SHAs first
jobs.py       one job run: the App's token for the repo, the PR's files at its head, the gate of
              deploy.after, the per-PR lease, then the same core as the Action
resync.py     what deliveries missed while the server was down, found and queued again
metrics.py    the Prometheus metrics
app.py        the pieces wired into one ASGI app with its lifecycle, for `previewbot serve`
"""
