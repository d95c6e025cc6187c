"""The write rate limit: at most `writes_per_minute` write requests per API key, or per client address for
clients without one, over a sliding window of the last minute. It lives in the API process's memory, so each
replica behind a load balancer counts its own (N replicas admit up to N times the rate); the per-key quotas
on queued work (app.services.quotas) are the bound that holds across replicas."""

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request

from app.services.errors import TooManyRequests
from app.services.keys import Principal
from app.settings import Settings

WINDOW_SECONDS = 60.0
# Clients idle for a whole window are forgotten every this many requests, so memory follows active clients.
SWEEP_EVERY = 1024
_STATE_ATTRIBUTE = "write_rate_limiter"
_create_lock = threading.Lock()


class SlidingWindowLimiter:
    """Admits at most `limit` events per client in any `window` seconds (a log of each client's last
    `limit` admissions; thread-safe, as sync dependencies run in a thread pool)."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def admit(self, client: str) -> float | None:
        """Record an admission and return None, or return the seconds until `client` may try again."""
        now = self.clock()
        with self._lock:
            self._calls += 1
            if self._calls % SWEEP_EVERY == 0:
                self._forget_idle(now)
            times = self._admitted.setdefault(client, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return times[0] + self.window - now
            times.append(now)
            return None

    def _forget_idle(self, now: float) -> None:
        idle = [client for client, times in self._admitted.items() if not times or times[-1] <= now - self.window]
        for client in idle:
            del self._admitted[client]


def _limiter(request: Request, settings: Settings) -> SlidingWindowLimiter:
    """The app's limiter, made on its first write request so the app factory needs to know nothing of it."""
    state = request.app.state
    limiter: SlidingWindowLimiter | None = getattr(state, _STATE_ATTRIBUTE, None)
    if limiter is None:
        with _create_lock:
            limiter = getattr(state, _STATE_ATTRIBUTE, None)
            if limiter is None:
                limiter = SlidingWindowLimiter(settings.writes_per_minute)
                setattr(state, _STATE_ATTRIBUTE, limiter)
    return limiter


def enforce_write_rate(request: Request, settings: Settings, principal: Principal) -> None:
    """Count one write request of the principal's key (or, without a key, of its client address); 429 with
    Retry-After once the last minute already holds `writes_per_minute` of them."""
    if principal.name is not None:
        client, field, who = f"key:{principal.name}", "authorization", f"key {principal.name!r}"
    else:
        host = request.client.host if request.client is not None else "unknown"
        client, field, who = f"address:{host}", "client", f"client {host}"
    wait = _limiter(request, settings).admit(client)
    if wait is not None:
        raise TooManyRequests(
            field,
            f"{who} made {settings.writes_per_minute} write requests in the last minute, the most allowed "
            "(writes_per_minute); retry after the Retry-After seconds",
            max(1, math.ceil(wait)),
        )
