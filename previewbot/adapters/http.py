"""The preview URL check over httpx (implements ports.UrlProbe).

httpx is loaded, and its client made, at the first check: a run that checks no URL never pays for
either (about a fifth of a second of a run's start, most of it in making the TLS context).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from previewbot.core.ports import Progress

if TYPE_CHECKING:
    import httpx


class HttpProbe:
    """Asks the URL again, backing off, until it answers the expected status or time runs out."""

    def __init__(
        self,
        *,
        request_timeout: float = 5.0,
        max_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._request_timeout = request_timeout
        self._client: httpx.Client | None = None
        self._max_interval = max_interval
        self._sleep = sleep

    def wait_until_answers(
        self, url: str, *, expect_status: int, timeout: float, progress: Progress | None = None
    ) -> str | None:
        import httpx

        if self._client is None:
            self._client = httpx.Client(follow_redirects=True, timeout=self._request_timeout)
        client = self._client
        last: list[str] = []

        def attempt() -> str | None:
            try:
                status = client.get(url).status_code
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__} from {url}"
            else:
                if status == expect_status:
                    return None
                reason = f"{url} answered {status}, expected {expect_status}"
            if not last or last[-1] != reason:
                if progress:
                    progress(reason)
                last.append(reason)
            return reason

        retrying = Retrying(
            retry=retry_if_result(lambda reason: reason is not None),
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.2, max=self._max_interval),
            sleep=self._sleep,
        )
        try:
            return retrying(attempt)
        except RetryError:
            return f"{last[-1] if last else url} (for {timeout:.0f}s)"
