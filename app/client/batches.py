"""A batch on the server as a handle (`refresh`, `wait` with a progress bar, `cancel`), and the progress bar
itself, which the CLI's local batches share."""

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from app.api.schemas import BatchOut
from app.client.errors import NasscoreError
from app.client.transport import Transport

FINAL_STATUSES = ("done", "cancelled")
POLL_SECONDS = 0.5


class BatchCounts(Protocol):
    """What a progress bar needs of a batch's state: BatchOut has it, and so has the CLI's local state."""

    @property
    def status(self) -> str: ...

    @property
    def total(self) -> int: ...

    @property
    def done(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def cancelled(self) -> int: ...


State = TypeVar("State", bound=BatchCounts)


def finished_items(state: BatchCounts) -> int:
    return state.done + state.failed + state.cancelled


def follow(
    label: str,
    poll: Callable[[], State],
    *,
    progress: bool,
    poll_seconds: float = POLL_SECONDS,
    timeout: float | None = None,
) -> State:
    """Poll until the batch is done or cancelled and return its final state; with `progress`, a tqdm bar
    (finished/total, rate and ETA, failed items) on stderr. Past `timeout` seconds, a NasscoreError (the
    batch keeps running)."""
    from tqdm import tqdm

    deadline = None if timeout is None else time.monotonic() + timeout
    state = poll()
    options = {"unit": "cell", "desc": label, "dynamic_ncols": True, "disable": not progress}
    with tqdm(total=state.total, initial=finished_items(state), **options) as bar:
        while True:
            bar.set_postfix(failed=state.failed, refresh=False)
            bar.update(finished_items(state) - bar.n)
            if state.status in FINAL_STATUSES:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise NasscoreError(f"{label} not finished after {timeout} s ({state.status}); it keeps running")
            time.sleep(poll_seconds)
            state = poll()


class Batch:
    """A batch on the server: `state` is its last known BatchOut (progress counts, rate, ETA, links)."""

    def __init__(self, transport: Transport, state: BatchOut) -> None:
        self._transport = transport
        self.state = state

    @property
    def id(self) -> int:
        return self.state.id

    @property
    def finished(self) -> bool:
        """Done or cancelled, as of the last refresh."""
        return self.state.status in FINAL_STATUSES

    def refresh(self) -> BatchOut:
        """Ask the server for the batch's progress now."""
        self.state = BatchOut.model_validate_json(self._transport.request("GET", self.state.url).content)
        return self.state

    def wait(
        self, progress: bool = False, poll_seconds: float = POLL_SECONDS, timeout: float | None = None
    ) -> BatchOut:
        """Block until the batch is done or cancelled (with `progress`, a tqdm bar with rate and ETA) and
        return its final state; past `timeout` seconds, a NasscoreError while the batch keeps running."""
        return follow(f"batch {self.id}", self.refresh, progress=progress, poll_seconds=poll_seconds, timeout=timeout)

    def cancel(self) -> BatchOut:
        """Cancel its pending items (computed scores stay stored). Only the key that started it, or an admin
        key, may (403); a finished batch answers 409."""
        self.state = BatchOut.model_validate_json(self._transport.request("DELETE", self.state.url).content)
        return self.state

    def __repr__(self) -> str:
        counts = f"{finished_items(self.state)}/{self.state.total}"
        return f"<Batch {self.id} {self.state.status} {counts}>"
