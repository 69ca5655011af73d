"""Loading .preview.yml: defaults, every kind of mistake with its line, and the shipped JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import previewbot
from previewbot.config import (
    BUILTIN_VARIABLES,
    PreviewConfig,
    config_schema,
    load_config,
    load_config_file,
    parse_duration,
    referenced_variables,
)
from previewbot.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO = REPO_ROOT / "examples" / "hello"
SCHEMA_FILE = Path(previewbot.__file__).parent / "schema" / "preview.schema.json"


def problems_of(text: str, *, path: str = ".preview.yml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, path=path)
    assert caught.value.path == path
    return caught.value.problems


# ---------------------------------------------------------------- what loads


def test_the_bundled_example_loads() -> None:
    config = load_config_file(HELLO)

    assert config.manifests == ["deploy/"]
    assert config.images[0].name == "ghcr.io/acme/hello"
    assert config.images[0].tag == "pr-${PR_NUMBER}-${SHORT_SHA}"
    assert config.url == "https://hello-pr-${PR_NUMBER}.preview.example.com"
    assert config.tests is not None
    assert config.tests.job is not None
    assert config.tests.command
    assert config.namespace.quota is not None
    assert config.namespace.quota.cpu == "2"  # YAML's number 2 becomes the quantity "2"
    assert config.ttl == 3 * 24 * 3600
    assert config.forks.policy == "approve"


def test_a_minimal_config_takes_the_defaults() -> None:
    config = load_config("manifests: [k8s/app.yaml]\n")

    assert config == PreviewConfig(manifests=["k8s/app.yaml"])
    assert config.readiness.timeout == 300
    assert config.namespace.network_policy == "isolate"
    assert config.commands.permission == "write"
    assert config.tests is None


@pytest.mark.parametrize(
    ("written", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("45s", 45.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0)],
)
def test_durations_are_seconds_or_text(written: object, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["5 minutes", "", "0s", 0, -3, True, "1m2h"])
def test_what_is_not_a_duration(written: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(written)


def test_a_registry_with_a_port_is_a_repository_not_a_tag() -> None:
    config = load_config("manifests: [a]\nimages:\n  - name: localhost:5000/team/app\n")

    assert config.images[0].name == "localhost:5000/team/app"


def test_tests_may_have_both_a_job_and_a_command() -> None:
    config = load_config("manifests: [a]\ntests:\n  job: {image: e2e:1}\n  command: make e2e\n")

    assert config.tests is not None
    assert config.tests.job is not None
    assert config.tests.command == "make e2e"


def test_secrets_are_written_with_from() -> None:
    config = load_config("manifests: [a]\nnamespace:\n  secrets:\n    - from: shared/registry\n")

    assert config.namespace.secrets[0].from_ == "shared/registry"


def test_referenced_variables_leave_escaped_ones_out() -> None:
    assert referenced_variables("${A}-$${B}-$C-${D}") == ["A", "D"]


# ---------------------------------------------------------------- what does not


def test_an_unknown_key_suggests_the_near_one() -> None:
    text = "manifests: [a]\nnamespace:\n  qouta:\n    pods: 3\n"

    assert problems_of(text) == [".preview.yml:3: namespace.qouta: unknown key (did you mean quota?)"]


def test_an_unknown_key_with_nothing_near_lists_the_known_ones() -> None:
    assert problems_of("manifests: [a]\nsmoke:\n  zzz: 1\n") == [
        ".preview.yml:3: smoke.zzz: unknown key (known keys: path, expect_status, timeout)"
    ]


def test_a_bad_duration_names_key_and_line() -> None:
    text = "manifests: [a]\ntests:\n  command: make e2e\n  timeout: 5 minutes\n"

    assert problems_of(text) == [
        ".preview.yml:4: tests.timeout: '5 minutes' is not a duration: use seconds or text like 30s, 5m, 1h30m, 2d"
    ]


def test_a_wrong_type_is_not_coerced() -> None:
    text = 'manifests: [a]\nnamespace:\n  quota:\n    pods: "10"\n'

    assert problems_of(text) == [".preview.yml:4: namespace.quota.pods: expected a whole number, got '10'"]


def test_a_mapping_where_text_belongs() -> None:
    assert problems_of("manifests: [a]\nurl: {host: x}\n") == [".preview.yml:2: url: expected text, got a mapping"]


def test_a_bad_choice_lists_the_choices() -> None:
    assert problems_of("manifests: [a]\ncommands:\n  permission: writer\n") == [
        ".preview.yml:3: commands.permission: 'writer' is not one of 'read', 'triage', 'write', 'maintain' or 'admin'"
    ]


def test_a_missing_required_key_points_at_its_parent() -> None:
    assert problems_of("manifests: [a]\nimages:\n  - tag: x\n") == [
        ".preview.yml:3: images[0].name: required key is missing",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "url: https://example.com\nmanifests: [deploy/]\nhelm:\n  chart: deploy/chart\n",
            ".preview.yml:3: give one of `manifests`, `helm` and `kustomize`, not manifests and helm",
        ),
        (
            "url: https://example.com\n",
            ".preview.yml:1: nothing to deploy: "
            "give `manifests` (files or folders), `helm` (a chart) or `kustomize` (an overlay)",
        ),
    ],
)
def test_a_config_deploys_exactly_one_source(text: str, problem: str) -> None:
    assert problems_of(text) == [problem]


@pytest.mark.parametrize(
    ("helm", "problem"),
    [
        ("chart: oci://ghcr.io/acme/charts/web", "a chart from a repository or registry needs `version`"),
        ("chart: web\n  repository: https://charts.example.com", "a chart from a repository or registry needs"),
        ("chart: deploy/chart\n  version: 1.0.0", "`version` is for a chart from a repository or registry"),
    ],
)
def test_a_charts_version_is_pinned_exactly_when_it_comes_from_elsewhere(helm: str, problem: str) -> None:
    [found] = problems_of(f"helm:\n  {helm}\n")

    assert found.startswith(f".preview.yml:1: helm: {problem}")


def test_a_chart_with_values_loads() -> None:
    config = load_config(
        "helm:\n  chart: oci://ghcr.io/acme/charts/web\n  version: 1.2.3\n  release: web\n"
        "  values_files: [deploy/preview.yaml]\n  values:\n    image:\n      tag: pr-${PR_NUMBER}\n    replicas: 1\n"
    )

    assert config.helm is not None
    assert config.helm.remote
    assert config.helm.values == {"image": {"tag": "pr-${PR_NUMBER}"}, "replicas": 1}


def test_empty_manifests() -> None:
    assert problems_of("manifests: []\n") == [".preview.yml:1: manifests: must not be empty"]


def test_tests_need_a_job_or_a_command() -> None:
    assert problems_of("manifests: [a]\ntests:\n  timeout: 5m\n") == [
        ".preview.yml:2: tests: give `job` (run in the cluster), `command` (run by the Action), or both"
    ]


def test_a_job_report_needs_the_jobs_command() -> None:
    text = "manifests: [a]\ntests:\n  job:\n    image: e2e:1\n    report: /tmp/junit.xml\n"

    assert problems_of(text) == [
        ".preview.yml:3: tests.job: `report` needs `command`: previewbot wraps the command to read the report"
    ]


def test_an_image_name_with_a_tag() -> None:
    (problem,) = problems_of("manifests: [a]\nimages:\n  - name: ghcr.io/acme/web:latest\n")

    assert problem.startswith(".preview.yml:3: images[0].name: 'ghcr.io/acme/web:latest' is not an image repository")


def test_a_bad_quantity() -> None:
    (problem,) = problems_of("manifests: [a]\nnamespace:\n  limits:\n    default:\n      memory: lots\n")

    assert problem.startswith(".preview.yml:5: namespace.limits.default.memory: 'lots' is not a Kubernetes quantity")


def test_a_bad_namespace_prefix() -> None:
    (problem,) = problems_of("manifests: [a]\nnamespace:\n  prefix: Preview_Apps\n")

    assert problem.startswith(".preview.yml:3: namespace.prefix: 'Preview_Apps' does not match")


def test_duplicate_keys_name_both_lines() -> None:
    text = "manifests: [a]\nforks:\n  policy: deny\n  policy: allow\n"

    assert problems_of(text) == [".preview.yml:4: forks.policy: duplicate key (first at line 3)"]


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = (
        "version: 1\n"  # 1
        "manifests: [deploy/]\n"  # 2
        "namespace:\n"  # 3
        "  qouta: {}\n"  # 4
        "tests:\n"  # 5
        "  job:\n"  # 6
        "    image: e2e:1\n"  # 7
        "  timeout: 5 minutes\n"  # 8
        "forks: {policy: deny}\n"  # 9
        "forks: {policy: allow}\n"  # 10
        "commands: {permission: writer}\n"  # 11
    )

    assert problems_of(text) == [
        ".preview.yml:4: namespace.qouta: unknown key (did you mean quota?)",
        ".preview.yml:8: tests.timeout: '5 minutes' is not a duration: use seconds or text like 30s, 5m, 1h30m, 2d",
        ".preview.yml:10: forks: duplicate key (first at line 9)",
        ".preview.yml:11: commands.permission: 'writer' is not one of 'read', 'triage', 'write', 'maintain' or 'admin'",
    ]


def test_the_path_given_is_the_path_shown() -> None:
    assert problems_of("manifests: [a]\nttl: soon\n", path=".github/preview.yml") == [
        ".github/preview.yml:2: ttl: 'soon' is not a duration: use seconds or text like 30s, 5m, 1h30m, 2d"
    ]


def test_yaml_syntax_error() -> None:
    (problem,) = problems_of("manifests: [a\nurl: x\n")

    assert problem.startswith(".preview.yml:2: invalid YAML: ")


def test_yaml_tags_that_build_python_objects_are_refused() -> None:
    (problem,) = problems_of("manifests: !!python/object/apply:os.system [echo hi]\n")

    assert "invalid YAML" in problem


def test_the_top_level_must_be_a_mapping() -> None:
    assert problems_of("- manifests\n") == [
        ".preview.yml:1: the top level must be a mapping of keys such as `manifests`"
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n"])
def test_an_empty_file(text: str) -> None:
    assert problems_of(text) == [".preview.yml:1: the file is empty: it needs `manifests`, `helm` or `kustomize`"]


def test_more_than_one_document() -> None:
    assert problems_of("manifests: [a]\n---\nmanifests: [b]\n") == [
        ".preview.yml:2: invalid YAML: expected a single document in the stream, but found another document"
    ]


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_file(tmp_path)

    assert caught.value.problems == [".preview.yml: not found: previewbot needs a .preview.yml at the root of the repo"]


def test_a_file_elsewhere_is_named_in_its_problems(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "preview.yml").write_text("manifests: [a]\nttl: soon\n")

    with pytest.raises(ConfigError, match=r"ci/preview\.yml:2: ttl"):
        load_config_file(tmp_path, "ci/preview.yml")


def test_a_config_that_links_out_of_the_repo_is_refused_unread(tmp_path: Path) -> None:
    outside = tmp_path / "runner-credentials"
    outside.write_text("manifests: [stolen]\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".preview.yml").symlink_to(outside)

    with pytest.raises(ConfigError) as caught:
        load_config_file(repo)

    assert caught.value.problems == ["config: .preview.yml is outside the repo (a link out of it)"]


def test_a_config_path_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: \.\./\.preview\.yml is outside the repo$"):
        load_config_file(tmp_path / "repo", "../.preview.yml")


# ---------------------------------------------------------------- variables in the config itself


def test_a_variable_may_not_redefine_a_built_in() -> None:
    assert problems_of("manifests: [a]\nvariables:\n  HOST: x\n  SHA: abc\n") == [
        ".preview.yml:4: variables.SHA: ${SHA} is built in and cannot be redefined"
    ]


def test_a_variable_needs_a_name_a_template_can_use() -> None:
    (problem,) = problems_of("manifests: [a]\nvariables:\n  api-host: x\n")

    assert problem.startswith(".preview.yml:3: variables.api-host: not a variable name")


def test_variables_use_built_ins_only() -> None:
    text = "manifests: [a]\nvariables:\n  HOST: pr-${PR_NUMBER}.example.com\n  API: api.${HOST}\n"

    assert problems_of(text) == [
        ".preview.yml:4: variables.API: ${HOST} is a variable too: variables may use only built-in ones"
    ]


def test_templates_may_use_only_known_variables() -> None:
    known = ", ".join([*BUILTIN_VARIABLES, "HOST"])
    text = (
        "manifests: [a]\n"
        "variables:\n"
        "  HOST: pr-${PR_NUMBER}.example.com\n"
        "url: https://${HOST}/${PATH}\n"
        "images:\n"
        "  - name: ghcr.io/acme/web\n"
        "    tag: ${GIT_SHA}\n"
    )

    assert problems_of(text) == [
        f".preview.yml:4: url: unknown variable ${{PATH}} (known: {known})",
        f".preview.yml:7: images[0].tag: unknown variable ${{GIT_SHA}} (known: {known})",
    ]


def test_the_url_cannot_need_itself() -> None:
    text = "manifests: [a]\nvariables:\n  LINK: ${PREVIEW_URL}/docs\nurl: https://x.example.com${LINK}\n"

    assert problems_of(text) == [".preview.yml:4: url: ${LINK} needs the preview URL, which this template makes"]


def test_a_reference_that_is_not_a_name_tells_how_to_write_a_literal() -> None:
    assert problems_of("manifests: [a]\nenvironment: preview/${BRANCH:-main}\n") == [
        ".preview.yml:2: environment: ${BRANCH:-main} is not a variable: "
        "write $${BRANCH:-main} for the literal text ${BRANCH:-main}"
    ]


# ---------------------------------------------------------------- the JSON Schema


def schema_file() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def test_the_committed_schema_is_up_to_date() -> None:
    assert schema_file() == config_schema(), "regenerate: python -m previewbot.config > " + str(SCHEMA_FILE)


def test_the_module_prints_the_schema() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "previewbot.config"], check=True, capture_output=True, text=True
    ).stdout

    assert printed == SCHEMA_FILE.read_text()


def test_the_schema_is_draft_2020_12_with_descriptions() -> None:
    schema = schema_file()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/preview.schema.json")
    assert schema["title"]
    assert schema["description"]
    assert "from" in schema["$defs"]["SecretCopy"]["properties"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schema_accepts_the_bundled_example() -> None:
    document = yaml.safe_load((HELLO / ".preview.yml").read_text())

    jsonschema.Draft202012Validator(schema_file()).validate(document)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("manifests: [a]\nnamespace:\n  qouta: {}\n", "unknown key"),
        ("manifests: [a]\nbogus: 1\n", "unknown top-level key"),
        ("manifests: a.yaml\n", "manifests is a list"),
        ('manifests: [a]\nnamespace:\n  quota:\n    pods: "10"\n', "pods is an integer"),
        ("manifests: [a]\ncommands:\n  permission: writer\n", "permission is a choice"),
        ("manifests: [a]\nnamespace:\n  network_policy: open\n", "network_policy is a choice"),
        ("manifests: [a]\nttl: 5 minutes\n", "a duration's form"),
        ("manifests: [a]\ntests:\n  timeout: 5m\n", "tests need a job or a command"),
        ("manifests: [a]\ntests:\n  job: {image: e2e, report: /r.xml}\n", "a job's report needs its command"),
        ("images: []\n", "a deploy source is required"),
        ("manifests: [a]\nkustomize: deploy/overlay\n", "one deploy source, not two"),
        ("helm: {chart: deploy/chart}\nkustomize: deploy/overlay\n", "one deploy source, not two"),
        ("helm: {}\n", "a chart is required"),
        ("helm: {chart: deploy/chart, values_files: deploy/v.yaml}\n", "values_files is a list"),
        ("helm: {chart: web, repository: charts.example.com, version: 1.0.0}\n", "a repository is a URL"),
        ("helm: {chart: deploy/chart, release: My_Release}\n", "a release is a DNS label"),
        ("manifests: [a]\nvariables:\n  api-host: x\n", "variable names"),
        ("manifests: [a]\nversion: 2\n", "only version 1"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(text: str, why: str) -> None:
    document = yaml.safe_load(text)

    assert not jsonschema.Draft202012Validator(schema_file()).is_valid(document), why
    with pytest.raises(ConfigError):
        load_config(text)
