"""The one HTTP code path of the client (and so of the CLI's `--server` mode): the key, a timeout on every
request, retries with exponential backoff, and every failure turned into a NasscoreError."""

import logging
import os
import time
import warnings
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.client.errors import NasscoreError, PlainHttpKeyWarning
from app.settings import is_loopback

API_KEY_VARIABLE = "NASSCORE_API_KEY"
USER_AGENT = "nasscore-client"
# Overload and "not ready yet": the answers worth asking again after a pause.
RETRY_STATUSES = frozenset({429, 503})
# Methods the API treats as idempotent, so any transport failure may be retried: the request may have been
# received and acted on, and doing it again changes nothing. A POST is resent only when it cannot have left.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE"})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger("nasscore.client")


class Transport:
    """An httpx client bound to one server. Retries a request up to `retries` more times: after a connection
    failure (see IDEMPOTENT_METHODS), and after a 429 or 503, waiting the answer's Retry-After when it has
    one and `backoff` × 2^attempt seconds (at most 30) otherwise. A Retry-After beyond `max_wait` seconds is
    not waited out: the NasscoreError carries it, for the caller to decide. Each retry is logged at INFO on
    the `nasscore.client` logger, with `status`, `wait_seconds` and `retry_after` on the record."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_wait: float,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        headers = {"User-Agent": USER_AGENT}
        key = (os.environ.get(API_KEY_VARIABLE, "") if api_key is None else api_key).strip()
        if key:
            _warn_if_unencrypted(url, API_KEY_VARIABLE if api_key is None else "the API key")
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        answers: Collection[int] = (),
    ) -> httpx.Response:
        """The successful answer (2xx, or a status in `answers`), after the retries; a NasscoreError else."""
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, params=_query(params), json=json)
            except httpx.TransportError as error:
                if attempt < self.retries and (method in IDEMPOTENT_METHODS or isinstance(error, NOT_SENT)):
                    self._pause(method, path, attempt, self._backoff(attempt), f"{type(error).__name__}: {error}")
                    attempt += 1
                    continue
                raise NasscoreError(f"cannot reach {self.url}: {error}") from error
            if response.is_success or response.status_code in answers:
                return response
            retry_after = _retry_after(response)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = self._backoff(attempt) if retry_after is None else retry_after
                if wait <= self.max_wait:
                    self._pause(method, path, attempt, wait, f"answered {response.status_code}", response, retry_after)
                    attempt += 1
                    continue
            raise NasscoreError.from_response(response, retry_after)

    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_SECONDS, self.backoff * 2**attempt)

    def _pause(
        self,
        method: str,
        path: str,
        attempt: int,
        wait: float,
        why: str,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        log.info(
            "%s %s %s; retry %d of %d in %.1f s",
            method,
            path,
            why,
            attempt + 1,
            self.retries,
            wait,
            extra={
                "status": None if response is None else response.status_code,
                "wait_seconds": wait,
                "retry_after": retry_after,
            },
        )
        time.sleep(wait)

    def close(self) -> None:
        self.http.close()


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones (the server's defaults apply), lists comma-separated."""
    if params is None:
        return None
    return {
        name: ",".join(value) if isinstance(value, list | tuple) else value
        for name, value in params.items()
        if value is not None
    }


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: delay-seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322's convention
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _warn_if_unencrypted(url: str, key_name: str) -> None:
    address = urlsplit(url)
    if address.scheme == "http" and not is_loopback(address.hostname or ""):
        warnings.warn(f"sending {key_name} to {url} over plain HTTP", PlainHttpKeyWarning, stacklevel=4)
