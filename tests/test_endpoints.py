"""The preview's endpoints and workloads in its comment: every Ingress rule and external Service, and each
workload's readiness, read from the cluster once the rollout is done.

previewbot runs with its real adapters against the emulated GitHub API and the emulated (or, with
PREVIEWBOT_TEST_KUBECONFIG, a real) Kubernetes API. No controller fills in a load balancer's address
on either: the test does it, as a cloud's would, through the status subresource.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from previewbot.model import Phase
from tests.emulators.kube_plugin import KubeEnv
from tests.harness import (
    REPO,
    Bot,
    Checkout,
    comment_event,
    namespace_of,
    pr_event,
    preview_config,
    sticky,
    web_deployment,
)

SHA_1 = "1" * 40
SHA_2 = "2" * 40
ADDRESS = "203.0.113.7"  # TEST-NET-3: an address no one has
INGRESS_ADDRESS = "203.0.113.9"


def service(name: str, *, kind: str = "ClusterIP") -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n"
        f"spec:\n  type: {kind}\n  selector: {{app: web}}\n  ports:\n  - port: 80\n"
    )


def ingress(name: str, *, host: str, path: str, tls: bool = False) -> str:
    tls_section = f"  tls:\n  - hosts: [{host}]\n    secretName: {name}-tls\n" if tls else ""
    return (
        f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n{tls_section}"
        f"  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: {json.dumps(path)}\n"
        "        pathType: ImplementationSpecific\n"
        "        backend: {service: {name: web, port: {number: 80}}}\n"
    )


@pytest.fixture
def checkout(checkout: Checkout, prefix: str, site: str) -> Checkout:
    checkout.write(".preview.yml", preview_config(prefix=prefix, site=site))
    checkout.write("deploy/web.yaml", web_deployment())
    checkout.write("deploy/service.yaml", service("web"))
    return checkout


@pytest.fixture
def exposed(checkout: Checkout, prefix: str) -> Checkout:
    """The app behind two Ingresses (one over TLS) and a LoadBalancer."""
    checkout.write("deploy/app-ingress.yaml", ingress("app", host=f"{prefix}.preview.example.com", path="/", tls=True))
    checkout.write("deploy/docs-ingress.yaml", ingress("docs", host=f"docs-{prefix}.example.com", path="/docs"))
    checkout.write("deploy/lb.yaml", service("web-lb", kind="LoadBalancer"))
    return checkout


def test_the_comment_lists_every_endpoint_and_each_workloads_readiness(
    bot: Bot, github: Any, kube: KubeEnv, exposed: Checkout, prefix: str
) -> None:
    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    comment = sticky(github)
    app, docs = f"https://{prefix}.preview.example.com/", f"http://docs-{prefix}.example.com/docs"
    assert f"| [{app}](<{app}>) | Ingress `app` | ⏳ pending: no address yet |" in comment
    assert f"| [{docs}](<{docs}>) | Ingress `docs` | ⏳ pending: no address yet |" in comment
    assert "| port `80` | LoadBalancer `web-lb` | ⏳ pending: no address yet |" in comment
    assert "**Workloads:** ✅ `Deployment/web` 1/1\n" in comment

    # The cloud's load balancer and the ingress controller write their addresses, as theirs would.
    name = namespace_of(prefix)
    status = {"status": {"loadBalancer": {"ingress": [{"ip": ADDRESS}]}}}
    client.CoreV1Api(kube.api_client()).patch_namespaced_service_status("web-lb", name, status)
    status = {"status": {"loadBalancer": {"ingress": [{"ip": INGRESS_ADDRESS}]}}}
    client.NetworkingV1Api(kube.api_client()).patch_namespaced_ingress_status("app", name, status)
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])

    [outcome] = bot.on("pull_request", pr_event("synchronize", sha=SHA_2))

    assert outcome.status == Phase.READY
    comment = sticky(github)
    assert f"| [{app}](<{app}>) | Ingress `app` | ✅ `{INGRESS_ADDRESS}` |" in comment
    assert f"| [{docs}](<{docs}>) | Ingress `docs` | ⏳ pending: no address yet |" in comment
    assert f"| port `80` | LoadBalancer `web-lb` | ✅ `{ADDRESS}` |" in comment
    assert outcome.report is not None
    assert [e.name for e in outcome.report.endpoints] == ["app", "docs", "web-lb"]


def test_a_retest_keeps_the_endpoints_in_the_comment(
    bot: Bot, github: Any, exposed: Checkout, prefix: str, site: str
) -> None:
    exposed.write(".preview.yml", preview_config(prefix=prefix, site=site, more="tests:\n  command: 'true'\n"))
    github.set_permission(REPO, "Codertocat", "write")
    github.add_pull(pr_event("opened", sha=SHA_1)["pull_request"])
    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    _, event = comment_event(github, "/preview retest")

    [outcome] = bot.on("issue_comment", event)

    assert outcome.status == Phase.READY
    comment = sticky(github)
    assert "Tests run again with `/preview retest`" in comment
    assert "| port `80` | LoadBalancer `web-lb` | ⏳ pending: no address yet |" in comment
    assert "Ingress `app`" in comment


def test_a_node_port_and_a_failed_workload_are_in_the_comment(bot: Bot, github: Any, checkout: Checkout) -> None:
    checkout.write("deploy/debug.yaml", service("debug", kind="NodePort"))
    checkout.write("deploy/broken.yaml", web_deployment("broken", image="registry.invalid/nothing:1"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert re.search(r"\| port `3\d{4}` \| NodePort `debug` \| ✅ on every node's address \|", comment)
    assert "**Workloads:** ❌ `Deployment/broken` 0/1 · ✅ `Deployment/web` 1/1\n" in comment


def test_an_ingress_path_written_to_break_out_of_the_comment_is_shown_as_code(
    bot: Bot, github: Any, checkout: Checkout, prefix: str
) -> None:
    # The API server takes any path that starts with a slash when its type is ImplementationSpecific.
    path = "/x](https://evil.example) `<b>bold</b>` | cell"
    checkout.write("deploy/ingress.yaml", ingress("sly", host=f"{prefix}.example.com", path=path))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.READY
    comment = sticky(github)
    shown = f"http://{prefix}.example.com/x](https://evil.example) `<b>bold</b>` \\| cell"
    assert f"| ``{shown}`` | Ingress `sly` | ⏳ pending: no address yet |" in comment
    assert "](<https://evil" not in comment


def test_an_ingress_host_that_is_no_dns_name_is_refused_by_the_api_server(
    bot: Bot, github: Any, checkout: Checkout
) -> None:
    checkout.write("deploy/ingress.yaml", ingress("sly", host="x](https://evil.example)", path="/"))

    [outcome] = bot.on("pull_request", pr_event("opened", sha=SHA_1))

    assert outcome.status == Phase.FAILED
    comment = sticky(github)
    assert "spec.rules[0].host: Invalid value" in comment
    assert "| Endpoint |" not in comment
    outside_code = re.sub(r"```text\n.*?\n```", "", comment, flags=re.DOTALL)
    assert "evil" not in outside_code


def test_only_the_kinds_the_manifests_make_are_listed(
    bot: Bot, github: Any, emulated_kube: KubeEnv, exposed: Checkout, prefix: str
) -> None:
    assert emulated_kube.server is not None
    requests = emulated_kube.server.requests
    name = namespace_of(prefix)

    def listed(plural: str) -> int:
        """Plain lists of the namespace's objects of one kind: no label selector (prune's), no watch."""
        return sum(
            1
            for method, target in requests
            if method == "GET"
            and urlsplit(target).path.endswith(f"/namespaces/{name}/{plural}")
            and "labelSelector" not in target
            and "watch" not in target
        )

    bot.on("pull_request", pr_event("opened", sha=SHA_1))
    assert (listed("ingresses"), listed("services")) == (1, 1)

    for extra in ("deploy/app-ingress.yaml", "deploy/docs-ingress.yaml", "deploy/lb.yaml"):
        exposed.remove(extra)
    requests.clear()
    github.add_pull(pr_event("synchronize", sha=SHA_2)["pull_request"])
    bot.on("pull_request", pr_event("synchronize", sha=SHA_2))
    assert (listed("ingresses"), listed("services")) == (0, 0)
