"""Keeps tokens and secrets out of logs, comments and summaries.

Two nets: the values previewbot was given (the GitHub token, the kubeconfig's credentials),
registered with `Redactor.add`, and patterns for credentials that look like credentials
whether or not previewbot knows them (GitHub tokens, Authorization headers, kubeconfig keys).
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
    r"""(?i)(\b(?:token|client-key-data|client-certificate-data|password)['"]?[ \t]*:[ \t]*)"""
    r"""(?:"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\r\n]|'')*'|[^\s'",}]+)"""
)


class Redactor:
    """Replaces known secret values, and anything that looks like a credential, with `***`."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        """Register a secret, with its base64 and URL-encoded forms; values under 4 characters are ignored."""
        forms = {secret, secret.strip()}
        for value in list(forms):
            encoded = base64.b64encode(value.encode()).decode()
            forms |= {encoded, encoded.rstrip("="), quote(value, safe="")}
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


class RedactingFilter(logging.Filter):
    """Redacts each record's final message, its arguments and traceback included.

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
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True


redactor = Redactor()
"""The process's redactor: the front doors add the token and the secrets to it before anything is logged."""
