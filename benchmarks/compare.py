"""previewbot side by side with the kubectl steps it replaces, on the same manifests and API server.

    .venv/bin/python -m benchmarks.compare [--rounds N] [--sizes 5,20,100] [--github-latency S]
                                           [--json PATH] [--short]

For each app size (ConfigMaps, Secrets, Deployments and Services, a quarter each) and each round,
in alternating order so neither side always runs on a warmer server:

- kubectl: `kubectl create namespace`, `kubectl apply --server-side -f deploy/`, then
  `kubectl rollout status` for each Deployment, as a workflow would run them (each a process of
  its own, with a discovery cache as fresh as a CI runner's);
- previewbot: `previewbot action` on a pull_request event (a process of its own), reporting to the
  emulated GitHub, which answers at once. "ready" is when it logged its rollout done, "comment"
  when GitHub got the comment that says "Preview ready", "whole" when the process ended.

Then, on the last app: a redeploy of the same commit, and one where a push changed one image.
Requests are counted at the emulators; CPU seconds and peak memory are the processes' own (kubectl's
summed over its steps). The emulated GitHub answers at once, or after --github-latency seconds as
GitHub does over the internet (0.1 to 0.5 s), to show what of it the deploy waits for. previewbot's
own modules are compiled to bytecode first, as an installed package's are. Start-up times are of
`previewbot --help`, `plan` and `action` on an event it ignores. Times are medians over the rounds;
ratios are the medians of the per-round ratios.

The Kubernetes API is the emulator (tests/emulators), or the real cluster that
PREVIEWBOT_TEST_KUBECONFIG names. Nothing here fails on a time: it measures and tells.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from previewbot import naming
from tests.emulators.github import GitHubEmulator, load_event
from tests.emulators.kube import ADMIN, KubeApiServer
from tests.emulators.kube_plugin import REAL_CLUSTER_ENV, write_kubeconfig
from tests.emulators.kubelet import Kubelet

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPO = "Codertocat/Hello-World"
PAUSE = "registry.k8s.io/pause:3.9"
PAUSE_NEXT = "registry.k8s.io/pause:3.10"
READY_LINE = "✔ Wait for rollout"
READY_HEADING = "Preview ready"


# ---------------------------------------------------------------- measuring one process


@dataclass
class Run:
    """One process (or kubectl's steps, summed): wall seconds, CPU seconds, peak memory in MiB."""

    wall: float = 0.0
    cpu: float = 0.0
    peak_mib: float = 0.0
    ready: float | None = None  # seconds from start until the workloads were ready
    comment: float | None = None  # seconds from start until GitHub got the "ready" comment
    kube_requests: int | None = None
    github_requests: int | None = None
    github_writes: int | None = None
    ok: bool = True

    def add(self, other: Run) -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.peak_mib = max(self.peak_mib, other.peak_mib)
        self.ok = self.ok and other.ok


def run_process(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, watch_for: str | None = None
) -> tuple[Run, str, float | None]:
    """Run args to the end; its measures, its stderr, and the monotonic time `watch_for` appeared in stderr."""
    started = time.monotonic()
    process = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8"
    )
    lines: list[str] = []
    seen: list[float] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if watch_for and not seen and watch_for in line:
                seen.append(time.monotonic())
            lines.append(line)

    reader = threading.Thread(target=read)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    run = Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_mib=usage.ru_maxrss / 1024, ok=status == 0)
    return run, "".join(lines), (seen[0] if seen else None)


# ---------------------------------------------------------------- the APIs


@dataclass
class Apis:
    kubeconfig: Path
    github: GitHubEmulator
    kube: KubeApiServer | None  # None on a real cluster: its requests are not counted
    emulated: bool
    preview_prefix: str = field(default_factory=lambda: "bench" + secrets.token_hex(2))  # every namespace's

    def discard(self, namespace: str) -> None:
        """Delete a round's namespace, so that the next round finds the cluster as light as the first did."""
        if self.kube is not None:
            self.kube.delete("Namespace", namespace)
            return
        from kubernetes import config as k8s_config
        from kubernetes.client import ApiException, CoreV1Api

        with k8s_config.new_client_from_config(config_file=str(self.kubeconfig)) as client:
            try:
                CoreV1Api(client).delete_namespace(namespace)
            except ApiException as error:
                if error.status != 404:
                    raise


@contextmanager
def apis(workdir: Path, *, github_latency: float = 0.0) -> Iterator[Apis]:
    with ExitStack() as stack:
        github = stack.enter_context(GitHubEmulator())
        github.latency = github_latency
        event = load_event("pull_request.opened")
        github.add_repo(REPO, payload=event["repository"])
        real = os.environ.get(REAL_CLUSTER_ENV)
        if real:
            env = Apis(kubeconfig=Path(real), github=github, kube=None, emulated=False)
        else:
            kube = KubeApiServer().start()
            # kubectl sends no credentials over plain HTTP: here, as on the insecure port API servers
            # once had, a request without any acts as the admin.
            kube.users[""] = ADMIN
            stack.callback(kube.stop)
            kubelet = Kubelet(kube).start()
            stack.callback(kubelet.stop)
            env = Apis(
                kubeconfig=write_kubeconfig(workdir / "kubeconfig", kube.url), github=github, kube=kube, emulated=True
            )
        yield env


def preview_namespace(env: Apis, number: int) -> str:
    return naming.namespace_name(prefix=env.preview_prefix, repo=REPO, number=number)


def kube_requests(env: Apis) -> int | None:
    return len(env.kube.requests) if env.kube else None


# ---------------------------------------------------------------- the app


@dataclass(frozen=True)
class App:
    root: Path
    size: int
    deployments: tuple[str, ...]


def write_app(root: Path, *, size: int, prefix: str, image_of_first: str = PAUSE) -> App:
    deploy = root / "deploy"
    if deploy.exists():
        shutil.rmtree(deploy)
    deploy.mkdir(parents=True)
    (root / ".preview.yml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "manifests": ["deploy/"],
                "readiness": {"timeout": "5m"},
                "namespace": {"prefix": prefix, "network_policy": "none"},
            }
        )
    )
    quarter = max(1, size // 4)
    counts = {"Deployment": quarter, "Service": quarter, "Secret": quarter}
    counts["ConfigMap"] = size - sum(counts.values())
    documents: list[dict[str, Any]] = []
    for index in range(counts["ConfigMap"]):
        documents.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"config-{index}"}, "data": {"k": "v"}}
        )
    for index in range(counts["Secret"]):
        documents.append(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"secret-{index}"}, "stringData": {"k": "v"}}
        )
    names = tuple(f"web-{index}" for index in range(counts["Deployment"]))
    for index, name in enumerate(names):
        labels = {"app": name}
        documents.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    # The emulator runs deadlines a hundred times faster: a machine busy with other work
                    # must not time a rollout out.
                    "progressDeadlineSeconds": 6000,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{"name": "web", "image": image_of_first if index == 0 else PAUSE}],
                        },
                    },
                },
            }
        )
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": labels, "ports": [{"port": 80}]},
            }
        )
    for document in documents:
        kind, name = document["kind"].lower(), document["metadata"]["name"]
        (deploy / f"{kind}-{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return App(root=root, size=size, deployments=names)


# ---------------------------------------------------------------- the two sides


def kubectl_steps(env: Apis, app: App, namespace: str, cache: Path) -> Run:
    kubectl = shutil.which("kubectl", path=str(BIN)) or "kubectl"
    base = [kubectl, "--kubeconfig", str(env.kubeconfig), "--cache-dir", str(cache)]
    # The emulator serves no OpenAPI schema for kubectl to validate against, and reads JSON only where
    # `kubectl create` sends protobuf: there, the namespace comes from a manifest, in one request too.
    validate = ["--validate=false"] if env.emulated else []
    if env.emulated:
        manifest = app.root.parent / f"{namespace}.yaml"
        manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        create_namespace = [*base, "apply", "--server-side", *validate, "-f", str(manifest)]
    else:
        create_namespace = [*base, "create", "namespace", namespace]
    steps = [
        create_namespace,
        [*base, "apply", "--server-side", *validate, "-n", namespace, "-f", str(app.root / "deploy")],
        *(
            [*base, "rollout", "status", "-n", namespace, f"deployment/{name}", "--timeout=5m"]
            for name in app.deployments
        ),
    ]
    # The emulator sends no initial-events bookmark, which kubectl's watch-list would wait for forever.
    process_env = {**os.environ, "KUBE_FEATURE_WatchListClient": "false"} if env.emulated else None
    total = Run()
    before = kube_requests(env)
    for step in steps:
        run, errors, _ = run_process(step, env=process_env)
        if not run.ok:
            print(f"kubectl failed: {' '.join(step)}\n{errors}", file=sys.stderr)
        total.add(run)
    total.ready = total.wall
    if before is not None:
        total.kube_requests = kube_requests(env) - before  # type: ignore[operator]
    return total


def previewbot_action(env: Apis, app: App, *, number: int, sha: str, workdir: Path) -> Run:
    event = load_event("pull_request.synchronize")
    event["number"] = number
    pull = event["pull_request"]
    pull["number"] = number
    pull["head"]["sha"] = sha
    env.github.add_pull(pull)
    # Naming and guardrails come from the default branch's config: the same as the app's here.
    env.github.add_file(
        REPO, ".preview.yml", (app.root / ".preview.yml").read_text(), ref=pull["base"]["repo"]["default_branch"]
    )
    event_path = workdir / f"event-{number}-{sha[:7]}.json"
    event_path.write_text(json.dumps(event))
    process_env = {
        **os.environ,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_WORKSPACE": str(app.root),
        "GITHUB_API_URL": env.github.url,
        "INPUT_TOKEN": env.github.token,
        "INPUT_KUBECONFIG": str(env.kubeconfig),
    }
    kube_before, github_before = kube_requests(env), len(env.github.requests)
    started = time.monotonic()
    run, errors, ready_at = run_process(
        [str(BIN / "previewbot"), "action"], env=process_env, cwd=workdir, watch_for=READY_LINE
    )
    if not run.ok:
        print(f"previewbot failed:\n{errors}", file=sys.stderr)
    requests = env.github.requests[github_before:]
    run.github_requests = len(requests)
    run.github_writes = sum(1 for r in requests if r.method in ("POST", "PATCH", "PUT", "DELETE"))
    ready_comments = [
        r.at
        for r in requests
        if r.method in ("POST", "PATCH") and isinstance(r.body, dict) and READY_HEADING in str(r.body.get("body", ""))
    ]
    run.ready = ready_at - started if ready_at is not None else None
    run.comment = ready_comments[0] - started if ready_comments else None
    if kube_before is not None:
        run.kube_requests = kube_requests(env) - kube_before  # type: ignore[operator]
    return run


# ---------------------------------------------------------------- rounds and tables


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def side_by_side(env: Apis, workdir: Path, *, size: int, rounds: int, first_number: int) -> dict[str, Any]:
    app = write_app(workdir / f"app-{size}", size=size, prefix=env.preview_prefix)
    pairs: list[tuple[Run, Run]] = []
    for index in range(rounds):
        number = first_number + index
        namespace = f"{env.preview_prefix}-kubectl-{size}-{index}"
        with tempfile.TemporaryDirectory(dir=workdir) as cache:

            def kubectl(namespace: str = namespace, cache: str = cache) -> Run:
                return kubectl_steps(env, app, namespace, Path(cache))

            def previewbot(number: int = number) -> Run:
                return previewbot_action(env, app, number=number, sha=f"{number:040x}", workdir=workdir)

            if index % 2 == 0:
                ours, theirs = previewbot(), kubectl()
            else:
                theirs, ours = kubectl(), previewbot()
        pairs.append((ours, theirs))
        env.discard(namespace)
        env.discard(preview_namespace(env, number))
    return summarize(size, pairs)


def previewbot_medians(runs: Sequence[Run]) -> dict[str, float | None]:
    """What every table says of previewbot's runs: times, CPU and requests, each the median."""
    return {
        "ready": median([r.ready for r in runs]),
        "whole": median([r.wall for r in runs]),
        "cpu": median([r.cpu for r in runs]),
        "kube_requests": median([r.kube_requests for r in runs]),
        "github_requests": median([r.github_requests for r in runs]),
        "github_writes": median([r.github_writes for r in runs]),
    }


def summarize(size: int, pairs: Sequence[tuple[Run, Run]]) -> dict[str, Any]:
    ours = [p[0] for p in pairs]
    theirs = [p[1] for p in pairs]

    def ratio(mine: float | None, kubectl: float) -> float | None:
        return mine / kubectl if mine is not None and kubectl else None

    return {
        "objects": size,
        "rounds": len(pairs),
        "kubectl": {
            "wall": median([r.wall for r in theirs]),
            "cpu": median([r.cpu for r in theirs]),
            "peak_mib": median([r.peak_mib for r in theirs]),
            "kube_requests": median([r.kube_requests for r in theirs]),
        },
        "previewbot": {
            **previewbot_medians(ours),
            "comment_after_ready": median(
                [r.comment - r.ready if r.comment is not None and r.ready is not None else None for r in ours]
            ),
            "peak_mib": median([r.peak_mib for r in ours]),
        },
        "ratio": {
            "ready": median([ratio(o.ready, t.wall) for o, t in pairs]),
            "whole": median([ratio(o.wall, t.wall) for o, t in pairs]),
            "cpu": median([ratio(o.cpu, t.cpu) for o, t in pairs]),
        },
        "all_ok": all(o.ok and t.ok for o, t in pairs),
        "runs": [{"previewbot": asdict(o), "kubectl": asdict(t)} for o, t in pairs],
    }


def redeploys(env: Apis, workdir: Path, *, size: int, rounds: int, first_number: int) -> dict[str, Any]:
    """On a deployed preview: the same commit again, and a push that changed one image."""
    unchanged: list[Run] = []
    one_image: list[Run] = []
    for index in range(rounds):
        number = first_number + index
        app = write_app(workdir / f"redeploy-{size}-{index}", size=size, prefix=env.preview_prefix)
        sha = f"{number:040x}"
        previewbot_action(env, app, number=number, sha=sha, workdir=workdir)
        unchanged.append(previewbot_action(env, app, number=number, sha=sha, workdir=workdir))
        app = write_app(app.root, size=size, prefix=env.preview_prefix, image_of_first=PAUSE_NEXT)
        one_image.append(previewbot_action(env, app, number=number, sha=f"{number + 1:040x}", workdir=workdir))
        env.discard(preview_namespace(env, number))

    def row(runs: Sequence[Run]) -> dict[str, Any]:
        return {**previewbot_medians(runs), "all_ok": all(r.ok for r in runs)}

    return {"objects": size, "unchanged": row(unchanged), "one_image_changed": row(one_image)}


def startup(env: Apis, workdir: Path, *, rounds: int) -> dict[str, float | None]:
    ping = workdir / "ping.json"
    ping.write_text(json.dumps(load_event("ping")))
    action_env = {
        **os.environ,
        "GITHUB_EVENT_NAME": "ping",
        "GITHUB_EVENT_PATH": str(ping),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": env.github.url,
        "INPUT_TOKEN": env.github.token,
        "INPUT_KUBECONFIG": str(env.kubeconfig),
    }
    commands = {
        "--help": ([str(BIN / "previewbot"), "--help"], None),
        "plan": ([str(BIN / "previewbot"), "plan", str(ROOT / "examples" / "hello")], None),
        "action (ignored event)": ([str(BIN / "previewbot"), "action"], action_env),
    }
    return {
        name: median([run_process(args, env=process_env, cwd=workdir)[0].wall for _ in range(rounds)])
        for name, (args, process_env) in commands.items()
    }


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def count(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def print_tables(result: dict[str, Any]) -> None:
    print(f"\n{result['where']}; {result['machine']}; {result['rounds']} rounds each, medians\n")
    print(
        "| objects | kubectl steps | previewbot ready | ratio | comment ready after | previewbot whole | ratio "
        "| CPU kubectl | CPU previewbot | peak MiB previewbot | k8s requests kubectl / previewbot "
        "| GitHub requests (writes) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["side_by_side"]:
        ours, theirs, ratio = row["previewbot"], row["kubectl"], row["ratio"]
        print(
            f"| {row['objects']} | {seconds(theirs['wall'])} | {seconds(ours['ready'])} | {times(ratio['ready'])} "
            f"| {seconds(ours['comment_after_ready'])} | {seconds(ours['whole'])} | {times(ratio['whole'])} "
            f"| {seconds(theirs['cpu'])} | {seconds(ours['cpu'])} | {ours['peak_mib']:.0f} "
            f"| {count(theirs['kube_requests'])} / {count(ours['kube_requests'])} "
            f"| {count(ours['github_requests'])} ({count(ours['github_writes'])}) |"
        )
    redeploy = result["redeploy"]
    print(f"\nRedeploy of a {redeploy['objects']}-object app:\n")
    print("| redeploy | whole | ready | CPU | k8s requests | GitHub requests (writes) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("unchanged", "one_image_changed"):
        row = redeploy[name]
        print(
            f"| {name.replace('_', ' ')} | {seconds(row['whole'])} | {seconds(row['ready'])} | {seconds(row['cpu'])} "
            f"| {count(row['kube_requests'])} | {count(row['github_requests'])} ({count(row['github_writes'])}) |"
        )
    print("\nStart-up:\n")
    print("| command | wall |")
    print("|---|---:|")
    for name, value in result["startup"].items():
        print(f"| previewbot {name} | {seconds(value)} |")
    if not result["all_ok"]:
        print("\nSome runs failed: see the messages above.")


def git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="paired runs per app size (default 5)")
    parser.add_argument("--sizes", default="5,20,100", help="objects per app (default 5,20,100)")
    parser.add_argument(
        "--json", type=Path, default=None, help="where to write the results (default: .bench/COMMIT.json)"
    )
    parser.add_argument("--short", action="store_true", help="one round of a 5-object app: checks that it all runs")
    parser.add_argument(
        "--github-latency", type=float, default=0.0, help="seconds each GitHub answer takes (default 0: at once)"
    )
    options = parser.parse_args(argv)
    compileall.compile_dir(ROOT / "previewbot", quiet=1)
    sizes = [5] if options.short else [int(s) for s in options.sizes.split(",")]
    rounds = 1 if options.short else options.rounds
    commit = git_commit()
    target = options.json or ROOT / ".bench" / f"{commit}.json"
    with tempfile.TemporaryDirectory(prefix="previewbot-bench-") as temporary:
        workdir = Path(temporary)
        with apis(workdir, github_latency=options.github_latency) as env:
            where = "emulated Kubernetes API" if env.emulated else f"real cluster ({env.kubeconfig})"
            result: dict[str, Any] = {
                "commit": commit,
                "where": f"{where}, GitHub answering in {options.github_latency:.2f}s",
                "github_latency": options.github_latency,
                "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
                "rounds": rounds,
                "side_by_side": [],
            }
            number = 1000
            for size in sizes:
                result["side_by_side"].append(side_by_side(env, workdir, size=size, rounds=rounds, first_number=number))
                number += rounds
            result["redeploy"] = redeploys(
                env, workdir, size=sizes[min(1, len(sizes) - 1)], rounds=rounds, first_number=number
            )
            result["startup"] = startup(env, workdir, rounds=max(3, rounds))
    result["all_ok"] = all(row["all_ok"] for row in result["side_by_side"]) and all(
        result["redeploy"][k]["all_ok"] for k in ("unchanged", "one_image_changed")
    )
    print_tables(result)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {target}")
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
