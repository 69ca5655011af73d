"""Keeps tokens and secrets out of logs, comments and summaries.

Two nets: the values previewbot was given (the GitHub token, the kubeconfig's credentials),
registered with `Redactor.add`, and patterns for credentials that look like credentials
whether or not previewbot knows them (GitHub tokens, Authorization headers, kubeconfig keys).

Log lines also carry text from the config, the PR and pods; on an Actions runner a line can be a
workflow command (`::add-mask::`, `::set-output`, `::stop-commands::`...), so none is let through.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: masking every "abc" in every log would hide the log, not a secret."""

_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
# The header's name (and the quote a dict or JSON rendering puts around it) stays; its value goes.
_AUTHORIZATION = re.compile(r"""(?i)(\bauthorization['"]?\s*[:=]\s*['"]?)[^'"\r\n]+""")
_KUBECONFIG_CREDENTIAL = re.compile(
    r"""(?i)(\b(?:token|client-key-data|client-certificate-data|client-secret|password)['"]?[ \t]*:[ \t]*)"""
    r"""(?:"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\r\n]|'')*'|[^\s'",}]+)"""
)


class Redactor:
    """Replaces known secret values, and anything that looks like a credential, with `***`."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Register a secret, with its base64 and URL-encoded forms; values under 4 characters are ignored.

        Each line of a multi-line secret (a key, a certificate) is registered too: a log cut to its
        last lines shows some of them without the others.
        """
        forms = {secret, secret.strip()}
        for value in list(forms):
            encoded = base64.b64encode(value.encode()).decode()
            forms |= {encoded, encoded.rstrip("="), quote(value, safe="")}
        forms |= {line.strip() for line in secret.splitlines()}
        with self._lock:
            self._values |= {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
            # Longest first: a secret that contains another is masked whole, not around the shorter one.
            alternatives = sorted(self._values, key=len, reverse=True)
            self._known = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def redact(self, text: str) -> str:
        known = self._known
        if known is not None:
            text = known.sub(MASK, text)
        text = _GITHUB_TOKEN.sub(MASK, text)
        text = _AUTHORIZATION.sub(rf"\g<1>{MASK}", text)
        return _KUBECONFIG_CREDENTIAL.sub(rf"\g<1>{MASK}", text)


# The runner reads `::name ...::` at a line's start (after any white space) and `##[name]` anywhere in it.
_WORKFLOW_COMMAND_V2 = re.compile(r"^(\s*):(?=:)", re.M)
_WORKFLOW_COMMAND_V1 = re.compile(r"##(?=\[)")
_ZERO_WIDTH_SPACE = "\u200b"


def escape_workflow_commands(text: str) -> str:
    """Text that an Actions runner shows as it is, never runs as a workflow command.

    A zero-width space splits the `::` and the `##[` the runner looks for: the runner trims
    white space before `::`, and a zero-width space is not white space to it.
    """
    text = _WORKFLOW_COMMAND_V2.sub(rf"\g<1>:{_ZERO_WIDTH_SPACE}", text)
    return _WORKFLOW_COMMAND_V1.sub(f"##{_ZERO_WIDTH_SPACE}", text)


class RedactingFilter(logging.Filter):
    """Redacts each record's final message, its arguments and traceback included, and escapes workflow commands.

    Attach it to handlers: a logger's filters do not see records propagated from its children.
    """

    def __init__(self, redactor_: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor_ if redactor_ is not None else redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # Arguments that do not fit the format: show both rather than lose the record.
            message = f"{record.msg} {record.args!r}"
        record.msg = self._clean(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True

    def _clean(self, text: str) -> str:
        return escape_workflow_commands(self._redactor.redact(text))


redactor = Redactor()
"""The process's redactor: the front doors add the token and the secrets to it before anything is logged."""
