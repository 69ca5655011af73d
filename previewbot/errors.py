"""previewbot's one error tree.

    PreviewbotError
    ├── UserError                  bad input; told to the user, nothing else changes
    │   ├── ConfigError            .preview.yml is wrong (key, line)
    │   ├── ManifestError          a manifest cannot be read, substituted or is not allowed
    │   ├── EventError             an event payload previewbot cannot read
    │   └── SignatureError         a webhook delivery whose signature does not verify
    └── ApiError                   GitHub or Kubernetes said no; raised `from` the SDK's exception
        ├── NotFound               404
        ├── Conflict               409 (exists, stale resourceVersion, namespace Terminating)
        ├── Forbidden              403 that is not a rate limit
        ├── Invalid                400/422: the API rejected what we sent
        └── TemporaryError         5xx, rate limits, timeouts: worth a retry, after `delay`

Adapters map SDK exceptions to these at one boundary; the core never sees an SDK type.
"""

from __future__ import annotations


class PreviewbotError(Exception):
    """Base of every error previewbot raises on purpose."""


class UserError(PreviewbotError):
    """Something a user gave previewbot is wrong; the message says what and where."""


class ConfigError(UserError):
    """The repo's .preview.yml is invalid. `problems` holds one line per problem, each naming where."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__("\n".join([f"{path} has {len(problems)} problems:", *problems]))


class ManifestError(UserError):
    """A manifest cannot be loaded, substituted or is not allowed in a preview."""


class EventError(UserError):
    """An event payload that previewbot cannot read."""


class SignatureError(UserError):
    """A webhook delivery whose X-Hub-Signature-256 is missing or wrong."""


class ApiError(PreviewbotError):
    """GitHub or Kubernetes refused a request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class Forbidden(ApiError):
    pass


class Invalid(ApiError):
    pass


class TemporaryError(ApiError):
    """Worth trying again after `delay` seconds (rate limit, 5xx, timeout)."""

    def __init__(self, message: str, *, status: int | None = None, delay: float = 1.0) -> None:
        self.delay = delay
        super().__init__(message, status=status)
