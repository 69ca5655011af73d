"""Secrets stay out of text: known values in their encodings, credential patterns, and log records."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from previewbot.redact import MASK, RedactingFilter, Redactor, redactor
from previewbot.wiring import Connection, kubeconfig_credentials, register_secrets

TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def secrets() -> Redactor:
    redacting = Redactor()
    redacting.add("s3cret-value/with+chars")
    return redacting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password is s3cret-value/with+chars!", "password is ***!"),
        ("twice: s3cret-value/with+chars s3cret-value/with+chars", "twice: *** ***"),
        (
            "base64: " + base64.b64encode(b"s3cret-value/with+chars").decode(),
            "base64: ***",
        ),
        (
            "in a URL: https://x.example/?p=" + quote("s3cret-value/with+chars", safe=""),
            "in a URL: https://x.example/?p=***",
        ),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_known_values_in_every_form(secrets: Redactor, text: str, expected: str) -> None:
    assert secrets.redact(text) == expected


def test_base64_inside_longer_data_without_padding() -> None:
    redacting = Redactor()
    redacting.add("hunter22")  # base64 "aHVudGVyMjI=": padded alone, unpadded inside a longer blob
    blob = base64.b64encode(b"hunter22").decode().rstrip("=")

    assert redacting.redact(f"data:{blob}") == "data:***"


def test_short_values_are_ignored() -> None:
    redacting = Redactor()
    for short in ("", "a", "abc"):
        redacting.add(short)

    assert redacting.redact("a abc cab") == "a abc cab"


def test_the_longest_value_is_masked_whole() -> None:
    redacting = Redactor()
    redacting.add("abcd")
    redacting.add("abcdefgh")

    assert redacting.redact("abcdefgh abcd") == "*** ***"


def test_a_value_with_a_trailing_newline_is_also_known_without_it() -> None:
    redacting = Redactor()
    redacting.add("token-from-a-file\n")

    assert redacting.redact("using token-from-a-file now") == "using *** now"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {TOKEN} rejected", "token *** rejected"),
        ("ghp_" + "x" * 36, MASK),
        ("gho_" + "Y" * 36 + ".", MASK + "."),
        ("ghu_" + "0" * 36, MASK),
        ("ghr_" + "z9" * 38, MASK),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU", MASK),
        ("ghp_short and ghx_" + "a" * 36, "ghp_short and ghx_" + "a" * 36),
        ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig", "Authorization: ***"),
        ("authorization: token abc123\nnext line", "authorization: ***\nnext line"),
        (
            "{'Authorization': 'Basic dXNlcjpwYXNz', 'Accept': '*/*'}",
            "{'Authorization': '***', 'Accept': '*/*'}",
        ),
        ('{"authorization":"Bearer abc.def"}', '{"authorization":"***"}'),
        ("    token: eyJhbGciOiJSUzI1NiJ9.e30.sig\n    user: ci", "    token: ***\n    user: ci"),
        ("    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==", "    client-key-data: ***"),
        (
            "    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
            "    client-certificate-data: ***",
        ),
        ('    password: "correct horse battery staple"', "    password: ***"),
        ("    password: 'it''s'", "    password: ***"),
        ('password: "say \\"hi\\" now"', "password: ***"),
        ('{"token": "abc.def", "user": "ci"}', '{"token": ***, "user": "ci"}'),
        ("user: {password: hunter2, name: ci}", "user: {password: ***, name: ci}"),
        ("the token was refused", "the token was refused"),
    ],
)
def test_credential_patterns_are_always_masked(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.fixture
def captured(secrets: Redactor) -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter(secrets))
    logger = logging.getLogger("previewbot.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    yield lines
    logger.removeHandler(handler)
    logger.propagate = True


def test_log_records_are_redacted_arguments_included(captured: list[str]) -> None:
    logger = logging.getLogger("previewbot.test-redact")

    logger.warning("calling with %s and %r", "s3cret-value/with+chars", {"Authorization": f"token {TOKEN}"})
    logger.warning("plain %d%% of s3cret-value/with+chars", 50)

    assert captured == ["calling with *** and {'Authorization': '***'}", "plain 50% of ***"]


def test_tracebacks_are_redacted(captured: list[str]) -> None:
    logger = logging.getLogger("previewbot.test-redact")

    try:
        raise RuntimeError("login failed for s3cret-value/with+chars")
    except RuntimeError:
        logger.exception("request failed")

    (line,) = captured
    assert line.startswith("request failed\nTraceback")
    assert "RuntimeError: login failed for ***" in line
    assert "s3cret" not in line


def test_arguments_that_do_not_fit_the_format_are_kept_and_redacted(captured: list[str]) -> None:
    logging.getLogger("previewbot.test-redact").warning("%d items", "s3cret-value/with+chars")

    assert captured == ["%d items ('***',)"]


def test_the_default_filter_uses_the_module_redactor() -> None:
    redactor.add("module-wide-secret")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", ("module-wide-secret",), None)

    assert RedactingFilter().filter(record)
    assert record.getMessage() == "got ***"


def test_every_line_of_a_multi_line_secret_is_masked_in_a_cut_log() -> None:
    redacting = Redactor()
    key = (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
        "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
    )
    redacting.add(key)
    cut_log = "…cut…\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"

    assert redacting.redact(cut_log) == "…cut…\n***\n***\n"


def test_a_kubeconfig_registers_its_exec_and_auth_provider_credentials() -> None:
    document = {
        "users": [
            {"name": "plain", "user": {"token": "plain-token-value", "client-key-data": "a2V5LWRhdGE="}},
            {
                "name": "eks",
                "user": {
                    "exec": {
                        "command": "aws-iam-authenticator",
                        "args": ["get-token", "--cluster-id", "prod-cluster-7", "--role=arn:aws:iam::1:role/deployer"],
                        "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI/K7MDENG"}],
                    }
                },
            },
            {
                "name": "oidc",
                "user": {
                    "auth-provider": {
                        "name": "oidc",
                        "config": {
                            "client-id": "previews",
                            "client-secret": "oidc-client-secret",
                            "id-token": "eyJhbGciOiJSUzI1NiJ9.id.sig",
                            "refresh-token": "refresh-me-later",
                            "access-token": "access-now",
                        },
                    }
                },
            },
        ]
    }

    credentials = kubeconfig_credentials(document)

    assert sorted(credentials) == sorted(
        [
            "plain-token-value",
            "a2V5LWRhdGE=",
            "prod-cluster-7",
            "arn:aws:iam::1:role/deployer",
            "wJalrXUtnFEMI/K7MDENG",
            "oidc-client-secret",
            "eyJhbGciOiJSUzI1NiJ9.id.sig",
            "refresh-me-later",
            "access-now",
        ]
    )


def test_the_front_door_masks_a_kubeconfig_exec_environment() -> None:
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nusers:\n- name: eks\n  user:\n    exec:\n      command: get-credentials\n"
        "      env:\n      - name: API_KEY\n        value: exec-env-secret-42\n"
    )

    register_secrets(Connection(token="ghs_front-door-token", kubeconfig=kubeconfig))

    assert redactor.redact("exec-env-secret-42 ghs_front-door-token") == "*** ***"


@pytest.mark.parametrize(
    "line",
    [
        "::add-mask::visible",
        "  ::warning title=x::from a config key",
        "\t::set-output name=status::ready",
        "::stop-commands::resume-token",
        "config key\n::error::on the next line",
        "a pod said ##[set-output name=url;]https://evil.example",
    ],
)
def test_log_lines_never_start_a_workflow_command(captured: list[str], line: str) -> None:
    logging.getLogger("previewbot.test-redact").warning("%s", line)

    (text,) = captured
    assert text.replace("\u200b", "") == line
    for printed in text.splitlines():
        assert not printed.lstrip().startswith("::")
        assert "##[" not in printed


def test_a_traceback_cannot_start_a_workflow_command(captured: list[str]) -> None:
    try:
        raise ValueError("bad key\n::add-mask::x")
    except ValueError:
        logging.getLogger("previewbot.test-redact").exception("failed")

    (text,) = captured
    assert not any(printed.lstrip().startswith("::") for printed in text.splitlines())
