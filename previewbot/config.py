"""The repo's .preview.yml: its model, strict validation, and loading with line numbers.

Pure: reads text, returns a PreviewConfig or raises ConfigError with one line per problem,
each naming the key and the line.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from previewbot import yamlfast
from previewbot.errors import ConfigError
from previewbot.naming import DOMAIN
from previewbot.paths import path_in_repo

DEFAULT_PATH = ".preview.yml"

BUILTIN_VARIABLES = (
    "PR_NUMBER",
    "SHA",
    "SHORT_SHA",
    "BRANCH_SLUG",
    "NAMESPACE",
    "REPO",
    "REPO_NAME",
    "PREVIEW_URL",
)
"""The ${NAME}s previewbot fills in itself, in the order it lists them."""

# `${NAME}` is a variable; `$${NAME}` is the literal text `${NAME}`. Whatever sits between the
# braces counts as a reference, so that a typo such as `${PR NUMBER}` is reported, not kept.
VARIABLE_REFERENCE = re.compile(r"(\$?)\$\{([^}]*)\}")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_HINT = "use seconds or text like 30s, 5m, 1h30m, 2d"


def referenced_variables(template: str) -> list[str]:
    """The names a template refers to with ${NAME}, in order, leaving out `$${...}` literals."""
    return [name for escape, name in VARIABLE_REFERENCE.findall(template) if not escape]


def parse_duration(value: object) -> float:
    """Seconds from `90`, `"90s"`, `"5m"`, `"1h30m"` or `"2d"`."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is a number of seconds or text like 30s, 5m, 1h30m, 2d, not {value}")
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
    raise ValueError(f"{value!r} is not a duration: {_DURATION_HINT}")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(
        json_schema_extra={
            "type": ["string", "number"],
            "pattern": _DURATION.pattern,
            "minLength": 1,
            "exclusiveMinimum": 0,
        }
    ),
]

_QUANTITY = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def _parse_quantity(value: object) -> object:
    """A Kubernetes quantity as text; YAML reads `cpu: 2` as a number, which is fine too."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_parse_quantity),
    Field(json_schema_extra={"type": ["string", "number"], "pattern": _QUANTITY.pattern, "minimum": 0}),
]

_REPOSITORY = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def _check_repository(value: str) -> str:
    if not _REPOSITORY.match(value):
        raise ValueError(
            f"{value!r} is not an image repository such as ghcr.io/acme/web: "
            "give it without a tag or digest (the tag comes from `tag`)"
        )
    return value


PodSecurityLevel = Literal["baseline", "restricted"]
"""A Pod Security Standard previewbot holds a preview's pods to (`privileged` is never on offer)."""

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"


class _Strict(BaseModel):
    # strict: a YAML `"10"` is not silently an integer, just as the JSON Schema says.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


class Image(_Strict):
    """An image reference to pin to the PR's build."""

    name: Annotated[str, AfterValidator(_check_repository)] = Field(
        description="The image repository as the manifests write it, e.g. ghcr.io/acme/web",
        json_schema_extra={"pattern": _REPOSITORY.pattern},
    )
    tag: str = Field(
        default="${SHA}",
        description="Tag template; ${PR_NUMBER}, ${SHA}, ${SHORT_SHA}, ${BRANCH_SLUG} are filled in",
    )


class Readiness(_Strict):
    """How previewbot waits for the deployed workloads."""

    timeout: Duration = Field(default=300.0, description="How long to wait for the workloads to be ready")


class Smoke(_Strict):
    """The check that the preview URL answers before the tests run."""

    path: str = Field(default="/", description="Path under the preview URL to request")
    expect_status: int = Field(default=200, ge=100, le=599, description="The HTTP status that means up")
    timeout: Duration = Field(default=120.0, description="How long to keep asking until it answers")


class TestJob(_Strict):
    """End-to-end tests as a Kubernetes Job in the preview namespace."""

    __test__ = False  # not a pytest class, whatever its name

    model_config = ConfigDict(json_schema_extra={"dependentRequired": {"report": ["command"]}})

    image: str = Field(description="The test image, e.g. ghcr.io/acme/web-e2e:latest")
    command: list[str] | None = Field(default=None, description="The container's command (entrypoint)")
    args: list[str] | None = Field(default=None, description="The container's arguments")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment of the test container; PREVIEW_URL is set too"
    )
    report: str | None = Field(
        default=None,
        description="Path of the JUnit XML report inside the test container; needs `command`, "
        "which previewbot wraps to print the report when it ends",
    )

    @model_validator(mode="after")
    def _report_needs_command(self) -> TestJob:
        if self.report is not None and self.command is None:
            raise ValueError("`report` needs `command`: previewbot wraps the command to read the report")
        return self


class Tests(_Strict):
    """The end-to-end tests: a Job the server runs in the cluster, a command the Action runs, or both."""

    __test__ = False  # not a pytest class, whatever its name

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["job"]}, {"required": ["command"]}]})

    job: TestJob | None = Field(default=None, description="Tests run as a Job in the preview namespace")
    command: str | None = Field(default=None, description="Shell command the Action runs on the runner")
    report: str | None = Field(default=None, description="JUnit XML report written by `command`")
    timeout: Duration = Field(default=600.0, description="How long the tests may run")
    required: bool = Field(default=True, description="Fail the preview (and the Action) when tests fail")
    status_context: str = Field(
        default="previewbot/e2e",
        description="Commit status context of the tests; read from the default branch's config",
    )

    @model_validator(mode="after")
    def _job_or_command(self) -> Tests:
        if self.job is None and self.command is None:
            raise ValueError("give `job` (run in the cluster), `command` (run by the Action), or both")
        return self


class Quota(_Strict):
    """A ResourceQuota for the preview namespace: requests and limits alike."""

    cpu: Quantity | None = Field(default=None, description="CPU for all pods together, e.g. 2 or 1500m")
    memory: Quantity | None = Field(default=None, description="Memory for all pods together, e.g. 2Gi")
    pods: int | None = Field(default=None, ge=1, description="How many pods at most")


class Resources(_Strict):
    """CPU and memory of one container."""

    cpu: Quantity | None = Field(default=None, description="e.g. 100m")
    memory: Quantity | None = Field(default=None, description="e.g. 128Mi")


class Limits(_Strict):
    """A LimitRange: what a container gets when its manifest does not say."""

    default: Resources | None = Field(default=None, description="Default limits of a container")
    default_request: Resources | None = Field(default=None, description="Default requests of a container")


class SecretCopy(_Strict):
    """A Secret to copy into each trusted (non-fork) preview."""

    from_: str = Field(
        alias="from", pattern=f"^{_LABEL}/{_SUBDOMAIN}$", description="namespace/name of the source Secret"
    )
    name: str | None = Field(
        default=None,
        pattern=f"^{_SUBDOMAIN}$",
        description="Name in the preview; the source's name by default",
    )

    @property
    def copied_as(self) -> str:
        """The copy's name in the preview."""
        return self.name or self.from_.partition("/")[2]


class Namespace(_Strict):
    """The preview's namespace and the guardrails previewbot puts in it; read from the default branch's config."""

    prefix: str = Field(
        default="preview",
        pattern=r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$",
        description="Start of the namespace name: up to 20 of a-z, 0-9 and -",
    )
    quota: Quota | None = Field(default=None, description="A ResourceQuota for the namespace")
    limits: Limits | None = Field(default=None, description="A LimitRange for the namespace")
    network_policy: Literal["isolate", "none"] = Field(
        default="isolate",
        description="isolate: pods take traffic only from their own namespace and the ingress controller",
    )
    ingress_namespace: str = Field(
        default="ingress-nginx",
        pattern=f"^{_LABEL}$",
        description="Namespace of the ingress controller, let in by `isolate`",
    )
    secrets: list[SecretCopy] = Field(
        default_factory=list,
        description="Secrets to copy into trusted previews",
    )
    pod_security: PodSecurityLevel = Field(
        default="baseline",
        description="Pod Security Standard the preview's pods are held to, checked before applying and "
        "enforced by the namespace's Pod Security admission labels; read from the default branch's config",
    )


class Commands(_Strict):
    """Who may run `/preview` commands on a PR."""

    permission: Literal["read", "triage", "write", "maintain", "admin"] = Field(
        default="write", description="The least repository permission a commenter needs"
    )


class Forks(_Strict):
    """What happens to PRs from forks, whose code is not trusted."""

    policy: Literal["approve", "deny", "allow"] = Field(
        default="approve",
        description="approve: a preview only after a maintainer's /preview approve or label; "
        "deny: never; allow: always (without the copied secrets)",
    )
    approve_label: str | None = Field(
        default="preview-approved", description="A label that approves the PR's current head"
    )
    pod_security: PodSecurityLevel = Field(
        default="restricted",
        description="Pod Security Standard of a fork's preview; the stricter of this and namespace.pod_security holds",
    )


_CHART_REPOSITORY = re.compile(r"^(https?|oci)://\S+$")
_RELEASE_NAME = r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$"


class Helm(_Strict):
    """A Helm chart to deploy: in the repo, or from a chart repository or OCI registry at a fixed version."""

    chart: str = Field(
        min_length=1,
        description="A chart folder in the repo (deploy/chart), an OCI reference (oci://ghcr.io/acme/charts/web), "
        "or a chart's name in `repository`",
    )
    repository: str | None = Field(
        default=None,
        pattern=_CHART_REPOSITORY.pattern,
        description="The chart repository that holds `chart`, e.g. https://charts.example.com",
    )
    version: str | None = Field(default=None, description="The chart's version; needed for a chart not in the repo")
    release: str | None = Field(
        default=None,
        pattern=_RELEASE_NAME,
        description="The release name (.Release.Name); the chart's name by default",
    )
    values_files: list[str] = Field(
        default_factory=list, description="Values files in the repo, in order: a later one overrides an earlier one"
    )
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Values over the values files, e.g. image.tag: pr-${PR_NUMBER}-${SHORT_SHA}; "
        "previewbot's variables are filled in here and in the values files",
    )

    @property
    def remote(self) -> bool:
        """Whether the chart comes from outside the repo."""
        return self.repository is not None or self.chart.startswith("oci://")

    @model_validator(mode="after")
    def _version_where_it_means_something(self) -> Helm:
        if self.remote and not self.version:
            raise ValueError("a chart from a repository or registry needs `version`, so every deploy gets the same")
        if not self.remote and self.version:
            raise ValueError("`version` is for a chart from a repository or registry; a chart in the repo is as it is")
        return self


DEPLOY_SOURCES = ("manifests", "helm", "kustomize")
"""The keys that say what to deploy; a config has exactly one of them."""
_DEPLOY_SOURCES_ERROR = "deploy_sources"


class DeployOrder(_Strict):
    """When the deploy may start."""

    after: list[str] = Field(
        default_factory=list,
        description="Checks or workflows (by name) that build the images; the webhook server deploys a commit "
        "once each has succeeded for it, and reports a failed one instead of deploying",
    )


class PreviewConfig(_Strict):
    """A repo's .preview.yml, version 1."""

    version: Literal[1] = Field(default=1, description="The version of this file's format")
    manifests: list[str] | None = Field(
        default=None, min_length=1, description="Files or folders of Kubernetes manifests (or `helm`, or `kustomize`)"
    )
    helm: Helm | None = Field(default=None, description="A Helm chart to deploy (or `manifests`, or `kustomize`)")
    kustomize: str | None = Field(
        default=None,
        min_length=1,
        description="A Kustomize overlay folder in the repo, built as `kubectl kustomize` does "
        "(or `manifests`, or `helm`)",
    )
    images: list[Image] = Field(default_factory=list, description="Image references to pin to the PR's build")
    url: str | None = Field(default=None, description="Preview URL template, e.g. https://pr-${PR_NUMBER}.example.com")
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="More ${NAME}s for the manifests and Helm values; their values may use the built-in ones. "
        "Any other ${NAME} is left as written, for the shell scripts and templates manifests carry",
        json_schema_extra={"propertyNames": {"pattern": VARIABLE_NAME.pattern}},
    )
    environment: str = Field(
        default="preview/pr-${PR_NUMBER}",
        description="GitHub Deployment environment; read from the default branch's config",
    )
    status_context: str = Field(
        default="previewbot/deploy",
        description="Commit status context of the deploy; read from the default branch's config",
    )
    deploy: DeployOrder = Field(default_factory=DeployOrder, description="When the deploy may start")
    readiness: Readiness = Field(default_factory=Readiness, description="Waiting for the workloads")
    smoke: Smoke = Field(default_factory=Smoke, description="The check that the URL answers")
    tests: Tests | None = Field(default=None, description="End-to-end tests run against the preview")
    namespace: Namespace = Field(default_factory=Namespace, description="The preview namespace")
    ttl: Duration | None = Field(
        default=None,
        description="Destroy a preview this long after its last activity: a push, a command, a deploy, a wake",
    )
    sleep_after: Duration | None = Field(
        default=None,
        description="Scale a preview's Deployments and StatefulSets to zero this long after its last activity; "
        "a push or /preview wake wakes it",
    )
    keep_label: str | None = Field(
        default="preview-keep",
        description="A PR label that pins its preview (no expiry, no sleep), as /preview keep does; "
        "read from the default branch's config",
    )
    max_previews: int | None = Field(
        default=None,
        ge=1,
        description="How many previews of this repo may live at once; none: no cap; "
        "read from the default branch's config",
    )
    when_full: Literal["queue", "evict-oldest-idle", "refuse"] = Field(
        default="queue",
        description="When max_previews are live: queue (wait for a free slot), evict-oldest-idle "
        "(the least recently active preview goes), or refuse; read from the default branch's config",
    )
    commands: Commands = Field(
        default_factory=Commands, description="Who may run /preview commands; read from the default branch's config"
    )
    forks: Forks = Field(
        default_factory=Forks, description="The policy for PRs from forks; read from the default branch's config"
    )

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [key]} for key in DEPLOY_SOURCES]},
    )

    @model_validator(mode="after")
    def _one_deploy_source(self) -> PreviewConfig:
        given = [key for key in DEPLOY_SOURCES if getattr(self, key) is not None]
        if not given:
            raise PydanticCustomError(
                _DEPLOY_SOURCES_ERROR,
                "nothing to deploy: give `manifests` (files or folders), `helm` (a chart) or `kustomize` (an overlay)",
            )
        if len(given) > 1:
            raise PydanticCustomError(
                _DEPLOY_SOURCES_ERROR, f"give one of `manifests`, `helm` and `kustomize`, not {' and '.join(given)}"
            )
        return self


# ---------------------------------------------------------------- trust

TRUSTED_KEYS = (
    "commands",
    "forks",
    "namespace",
    "environment",
    "status_context",
    "tests.status_context",
    "max_previews",
    "when_full",
    "keep_label",
    "ttl",
    "sleep_after",
)
"""The keys that decide trust, guardrails and names: who may command, the fork gate and its Pod Security
level, the Secrets, quota, limits, network policy, Pod Security level and namespace prefix, the Deployment
environment, the commit status contexts, the cap on live previews, and how long an idle one lives. They
come from the default branch's config only: a pull request can change its own .preview.yml."""


def effective_config(own: PreviewConfig, trusted: PreviewConfig | None) -> PreviewConfig:
    """The PR's own config for what to deploy and test, with every trusted key from the default branch's
    config, or at its default when the default branch has no valid config."""
    effective = own
    for key in TRUSTED_KEYS:
        effective = _replaced(effective, key.split("."), _trusted_value(trusted, key))
    return effective


def trusted_default(key: str) -> Any:
    """The default of a trusted key, which holds when the default branch has no valid config."""
    model: type[BaseModel] | None = PreviewConfig
    *sections, name = key.split(".")
    for section in sections:
        assert model is not None
        model = _model_in(model.model_fields[section].annotation)
    assert model is not None
    return model.model_fields[name].get_default(call_default_factory=True)


def _trusted_value(trusted: PreviewConfig | None, key: str) -> Any:
    value: Any = trusted
    for part in key.split("."):
        if value is None:
            return trusted_default(key)
        value = getattr(value, part)
    return value


def _replaced(model: BaseModel, path: list[str], value: Any) -> Any:
    """model with the key at path set to value; a section the model lacks stays absent."""
    head, *rest = path
    if not rest:
        return model.model_copy(update={head: value})
    section = getattr(model, head)
    if section is None:
        return model
    return model.model_copy(update={head: _replaced(section, rest, value)})


# ---------------------------------------------------------------- loading

Location = tuple[str | int, ...]
Problem = tuple[int, str]  # (line, "path:line: key: what"), sorted by line before they are shown


def load_config(text: str, *, path: str = DEFAULT_PATH) -> PreviewConfig:
    """The config in text, or a ConfigError listing every problem as `path:line: key: what`."""
    loader = yamlfast.SAFE_LOADER(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError(path, [f"{path}:1: the file is empty: it needs `manifests`, `helm` or `kustomize`"])
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(
                path, [f"{path}:{_line(root)}: the top level must be a mapping of keys such as `manifests`"]
            )
        lines: dict[Location, int] = {(): _line(root)}
        problems = [_problem(path, line, loc, message) for line, loc, message in _index_lines(root, (), lines)]
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        reason = ", ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError(path, [f"{path}:{line}: invalid YAML: {reason}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError(path, [f"{path}:1: invalid YAML: {error}"]) from None
    finally:
        loader.dispose()

    config: PreviewConfig | None = None
    try:
        config = PreviewConfig.model_validate(data)
    except ValidationError as error:
        problems += [_problem(path, _line_of_error(lines, err), err["loc"], _explain(err)) for err in error.errors()]
    if config is not None:
        problems += [_problem(path, _line_of(lines, loc), loc, message) for loc, message in _variable_problems(config)]
    if config is None or problems:
        raise ConfigError(path, [text for _, text in sorted(set(problems))])
    return config


def load_config_file(root: Path, path: str = DEFAULT_PATH) -> PreviewConfig:
    """The config at root/path; a ConfigError naming the path when there is none, or it leads out of the repo."""
    file = path_in_repo(
        root, path, key="config", must_exist=False, refusal=lambda message: ConfigError(path, [message])
    )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [f"{path}: not found: previewbot needs a {path} at the root of the repo"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [f"{path}: not UTF-8 text"]) from None
    return load_config(text, path=path)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _index_lines(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> Iterator[tuple[int, Location, str]]:
    """Record the line of every key and list item under node; yield (line, key, message) per duplicate key."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, str(key_node.value))
            if child in lines:
                yield _line(key_node), child, f"duplicate key (first at line {lines[child]})"
                continue
            lines[child] = _line(key_node)
            yield from _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = _line(item)
            yield from _index_lines(item, (*loc, index), lines)


def _line_of(lines: Mapping[Location, int], loc: Location) -> int:
    """The line of loc, or of the nearest enclosing key that the file has (a missing key's parent)."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return 1


def _line_of_error(lines: Mapping[Location, int], error: ErrorDetails) -> int:
    """The line an error is about; for two deploy sources, the second one's."""
    if error["type"] == _DEPLOY_SOURCES_ERROR:
        return max((lines[(key,)] for key in DEPLOY_SOURCES if (key,) in lines), default=1)
    return _line_of(lines, error["loc"])


def _dotted(loc: Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _problem(path: str, line: int, loc: Location, message: str) -> Problem:
    where = _dotted(loc)
    return line, f"{path}:{line}: {where}: {message}" if where else f"{path}:{line}: {message}"


def _shown(value: object) -> str:
    """A value as the user wrote it in YAML, short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _explain(error: ErrorDetails) -> str:
    """One short sentence for a pydantic error, in the words of a YAML file rather than of Python."""
    kind, value, context = error["type"], error.get("input"), error.get("ctx", {})
    if kind == "extra_forbidden":
        return _unknown_key(error["loc"])
    if kind == "missing":
        return "required key is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_shown(value)}"
    if kind == "literal_error":
        return f"{_shown(value)} is not one of {context.get('expected')}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"{_shown(value)} does not match {context.get('pattern')}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be"):
        return f"{_shown(value)} should be{message.removeprefix('Input should be')}"
    return message


def _unknown_key(loc: Location) -> str:
    known = _keys_at(loc[:-1])
    guess = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if guess:
        return f"unknown key (did you mean {guess[0]}?)"
    return f"unknown key (known keys: {', '.join(known)})" if known else "unknown key"


def _keys_at(loc: Location) -> list[str]:
    """The keys the model takes at loc, by their YAML names."""
    annotation: Any = PreviewConfig
    for part in loc:
        model = _model_in(annotation)
        if isinstance(part, str) and model is not None:
            fields = {field.alias or name: field for name, field in model.model_fields.items()}
            if part not in fields:
                return []
            annotation = fields[part].annotation
    model = _model_in(annotation)
    return [field.alias or name for name, field in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `X`, `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list):
        for arg in get_args(annotation):
            model = _model_in(arg)
            if model is not None:
                return model
    return None


def unknown_variable_message(name: str, known: Iterable[str]) -> str:
    """What to tell a user whose template refers to ${name}, which nothing fills in."""
    if not VARIABLE_NAME.match(name):
        return f"${{{name}}} is not a variable: write $${{{name}}} for the literal text ${{{name}}}"
    return f"unknown variable ${{{name}}} (known: {', '.join(known)})"


def _variable_problems(config: PreviewConfig) -> Iterator[tuple[Location, str]]:
    """Variables that cannot be defined, and ${NAME}s in the config's own templates that nothing fills in.

    Variables are filled in from the built-ins alone. The URL is rendered before PREVIEW_URL
    exists, so neither it nor a variable it uses may need PREVIEW_URL.
    """
    for name in config.variables:
        if not VARIABLE_NAME.match(name):
            yield (
                ("variables", name),
                "not a variable name: use letters, digits and _, not starting with a digit",
            )
        elif name in BUILTIN_VARIABLES:
            yield ("variables", name), f"${{{name}}} is built in and cannot be redefined"
    everything = [*BUILTIN_VARIABLES, *(name for name in config.variables if name not in BUILTIN_VARIABLES)]
    for name, value in config.variables.items():
        for used in referenced_variables(value):
            if used in BUILTIN_VARIABLES:
                continue
            if used in config.variables:
                yield (
                    ("variables", name),
                    f"${{{used}}} is a variable too: variables may use only built-in ones",
                )
            else:
                yield ("variables", name), unknown_variable_message(used, BUILTIN_VARIABLES)
    for used in referenced_variables(config.url or ""):
        if used == "PREVIEW_URL" or "PREVIEW_URL" in referenced_variables(config.variables.get(used, "")):
            yield ("url",), f"${{{used}}} needs the preview URL, which this template makes"
        elif used not in everything:
            yield ("url",), unknown_variable_message(used, everything)
    templates: list[tuple[Location, str]] = [(("environment",), config.environment)]
    templates += [(("images", index, "tag"), image.tag) for index, image in enumerate(config.images)]
    for loc, template in templates:
        for used in referenced_variables(template):
            if used not in everything:
                yield loc, unknown_variable_message(used, everything)


# ---------------------------------------------------------------- JSON Schema

SCHEMA_ID = f"https://{DOMAIN}/schema/preview.schema.json"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of .preview.yml, for editors and for checking a file without previewbot."""
    generated = PreviewConfig.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
        "title": "previewbot .preview.yml",
    }


if __name__ == "__main__":
    print(json.dumps(config_schema(), indent=2))
