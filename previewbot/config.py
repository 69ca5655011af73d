"""The repo's .preview.yml: its model, strict validation, and loading with line numbers.

Pure: reads text, returns a PreviewConfig or raises ConfigError with one line per problem,
each naming the key and the line.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"5m"`, `"1h30m"` or `"2d"`."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h30m, 2d")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("a duration must be more than 0")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
            total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
            if total > 0:
                return float(total)
    raise ValueError(f"{value!r} is not a duration: use seconds or text like 30s, 5m, 1h30m, 2d")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(json_schema_extra={"type": ["string", "number"], "pattern": _DURATION.pattern}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Image(_Strict):
    """An image reference to pin to the PR's build."""

    name: str = Field(description="The image repository as the manifests write it, e.g. ghcr.io/acme/web")
    tag: str = Field(
        default="${SHA}",
        description="Tag template; ${PR_NUMBER}, ${SHA}, ${SHORT_SHA}, ${BRANCH_SLUG} are filled in",
    )


class Readiness(_Strict):
    timeout: Duration = Field(default=300.0, description="How long to wait for the workloads to be ready")


class Smoke(_Strict):
    """The check that the preview URL answers before the tests run."""

    path: str = Field(default="/", description="Path under the preview URL to request")
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout: Duration = Field(default=120.0)


class TestJob(_Strict):
    """End-to-end tests as a Kubernetes Job in the preview namespace."""

    image: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    report: str | None = Field(
        default=None, description="Path of the JUnit XML report inside the test container"
    )


class Tests(_Strict):
    job: TestJob | None = None
    command: str | None = Field(default=None, description="Shell command the Action runs on the runner")
    report: str | None = Field(default=None, description="JUnit XML report written by `command`")
    timeout: Duration = Field(default=600.0)
    required: bool = Field(default=True, description="Fail the preview (and the Action) when tests fail")
    status_context: str = "previewbot/e2e"


class Quota(_Strict):
    cpu: str | None = None
    memory: str | None = None
    pods: int | None = Field(default=None, ge=1)


class Resources(_Strict):
    cpu: str | None = None
    memory: str | None = None


class Limits(_Strict):
    default: Resources | None = None
    default_request: Resources | None = None


class SecretCopy(_Strict):
    """A Secret to copy into each trusted (non-fork) preview."""

    from_: str = Field(alias="from", description="namespace/name of the source Secret")
    name: str | None = Field(default=None, description="Name in the preview; the source's name by default")


class Namespace(_Strict):
    prefix: str = Field(default="preview", pattern=r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
    quota: Quota | None = None
    limits: Limits | None = None
    network_policy: Literal["isolate", "none"] = Field(
        default="isolate",
        description="isolate: pods take traffic only from their own namespace and the ingress controller",
    )
    ingress_namespace: str = Field(
        default="ingress-nginx", description="Namespace of the ingress controller, let in by `isolate`"
    )
    secrets: list[SecretCopy] = Field(default_factory=list)


class Commands(_Strict):
    permission: Literal["read", "triage", "write", "maintain", "admin"] = "write"


class Forks(_Strict):
    policy: Literal["approve", "deny", "allow"] = "approve"
    approve_label: str | None = Field(default="preview-approved")


class PreviewConfig(_Strict):
    """A repo's .preview.yml, version 1."""

    version: Literal[1] = 1
    manifests: list[str] = Field(min_length=1, description="Files or folders of Kubernetes manifests")
    images: list[Image] = Field(default_factory=list)
    url: str | None = Field(default=None, description="Preview URL template, e.g. https://pr-${PR_NUMBER}.example.com")
    variables: dict[str, str] = Field(default_factory=dict, description="More ${NAME}s for the manifests")
    environment: str = Field(default="preview/pr-${PR_NUMBER}", description="GitHub Deployment environment")
    status_context: str = "previewbot/deploy"
    readiness: Readiness = Field(default_factory=Readiness)
    smoke: Smoke = Field(default_factory=Smoke)
    tests: Tests | None = None
    namespace: Namespace = Field(default_factory=Namespace)
    ttl: Duration | None = Field(default=None, description="Destroy a preview this long after its last deploy")
    commands: Commands = Field(default_factory=Commands)
    forks: Forks = Field(default_factory=Forks)
