"""The dispatcher: a background thread (never the API's event loop) that claims pending items from the
queue, hands them to an executor (app/workers: local processes or a Ray cluster) and records what comes
back. Isomorphic cells are computed once: a claimed item whose class is already being computed waits for
that result instead of starting its own, and every member of the class receives the score. Any number of
dispatchers, in one process or several on different hosts, may serve one database: each heartbeats the
leases of what it holds, and finds what others abandoned by their expired leases."""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import Architecture
from app.queue import items as queue
from app.queue.items import ClaimedItem
from app.services import jobs
from app.services.calibration import CalibrationStore, worker_input
from app.services.errors import ServiceError
from app.services.onnx_models import architecture_data
from app.services.scores import record_scores, share_class_scores, stored_scores
from app.services.spaces import class_members
from app.workers.base import Executor, ScoringTask, TaskError, TaskResult, WorkerDied
from scorers import ProxyResult

log = logging.getLogger("nasscore.dispatcher")

# How many claimed items may wait on an in-flight isomorphic twin, per worker, before claiming pauses.
WAITING_PER_WORKER = 4
ClassKey = tuple[int, int, str]  # (config id, space id, canonical key)


@dataclass
class _InFlight:
    key: ClassKey
    representative_id: int
    items: list[ClaimedItem] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        database: Database,
        executor: Executor,
        store: CalibrationStore,
        *,
        poll_seconds: float = 0.5,
        lease_seconds: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        self.database = database
        self.executor = executor
        self.store = store
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.owner = queue.new_owner_id()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._futures: dict[Future[TaskResult], _InFlight] = {}
        self._by_key: dict[ClassKey, _InFlight] = {}
        self._last_lease_renewal = 0.0
        self._last_requeue = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nasscore-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for new work now instead of at the next poll."""
        self._wakeup.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop claiming and hand this dispatcher's running items straight back to pending."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join()
        self.database.transact(lambda session: queue.release_owned(session, self.owner))

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._maintain()
                self._fill()
                self._collect(self._wait())
            except Exception:  # a database hiccup must not kill the dispatcher; retry after a pause
                log.exception("dispatcher iteration failed; retrying")
                self._stopping.wait(self.poll_seconds)

    def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_requeue >= self.lease_seconds / 2:
            requeued = self.database.transact(queue.requeue_expired)
            if requeued:
                log.info("requeued %d item(s) whose lease expired", requeued)
            self._last_requeue = now
        if not self.executor.running():
            self._release_in_flight()
        elif self._futures and now - self._last_lease_renewal >= self.lease_seconds / 3:
            held = [item.item_id for flight in self._futures.values() for item in flight.items]
            self.database.transact(lambda session: queue.renew_leases(session, self.owner, held, self.lease_seconds))
            self._last_lease_renewal = now

    def _release_in_flight(self) -> None:
        """The executor stopped running tasks: record what it did finish (or fail), and rather than renew the
        leases of futures that never will, hand their items back (as after a worker crash) for a working
        executor to take."""
        self._collect({future for future in self._futures if future.done()})
        stranded = list(self._futures.values())
        self._futures.clear()
        self._by_key.clear()
        for flight in stranded:
            self._release(flight.items, f"the executor stopped before scoring {flight.items[0].arch}")

    def _waiting_count(self) -> int:
        return sum(len(flight.items) - 1 for flight in self._futures.values())

    def _fill(self) -> None:
        """Claim items until every worker is busy (or there is nothing left to claim); none for an executor
        that no longer runs tasks."""
        while not self._stopping.is_set() and self.executor.running():
            free = self.executor.capacity - len(self._futures)
            if free <= 0 or self._waiting_count() >= WAITING_PER_WORKER * self.executor.capacity:
                return
            claimed = self._claim(free)
            if not claimed:
                return
            for item in claimed:
                self._start(item)

    def _claim(self, limit: int) -> list[ClaimedItem]:
        return self.database.transact(lambda session: queue.claim_items(session, self.owner, limit, self.lease_seconds))

    def _start(self, item: ClaimedItem) -> None:
        key: ClassKey = (item.config.id, item.space_id, item.canonical_key)
        if key in self._by_key:
            self._by_key[key].items.append(item)
            return
        plan = self.database.transact(lambda session: self._plan(session, item))
        if plan is None:
            return
        representative, missing = plan
        try:
            with self.database.read_session() as session:
                calibration = worker_input(session, self.store, item.config)
                data = architecture_data(session, item.space_name, representative.arch)
        except ServiceError as error:
            self._fail([item], error.message)
            return
        task = ScoringTask(
            space=item.space_name,
            arch=representative.arch,
            proxies=missing,
            calibration=calibration,
            seed=item.config.seed,
            init=item.config.init,
            model_params=dict(item.config.model_params),
            architecture_data=data,
        )
        flight = _InFlight(key, representative.id, [item])
        self._futures[self.executor.submit(task)] = flight
        self._by_key[key] = flight

    def _plan(self, session: Session, item: ClaimedItem) -> tuple[Architecture, tuple[str, ...]] | None:
        """(representative to compute, proxies still missing), or None when the item could be finished from
        scores the store already holds for it or for an isomorphic twin."""
        members = class_members(session, item.space_id, item.canonical_key)
        share_class_scores(session, item.config.id, [m.id for m in members], item.proxies)
        stored = stored_scores(session, item.architecture_id, item.config.id, item.proxies)
        missing = tuple(proxy for proxy in item.proxies if proxy not in stored)
        if not missing:
            self._settle(session, item, {})
            return None
        return members[0], missing

    def _settle(self, session: Session, item: ClaimedItem, outcomes: dict[str, ProxyResult]) -> None:
        """Finish an item from what is stored plus this round's unstorable errors; an item that needs a
        proxy nobody computed this round (it waited on a twin asked for fewer proxies) goes back to pending.

        Only a proxy that raised fails the item. A non-finite value is a result (a cell whose output ignores
        its input has log-determinant -inf: it ranks last), so the item is done and its note kept."""
        stored = stored_scores(session, item.architecture_id, item.config.id, item.proxies)
        if any(proxy not in stored and proxy not in outcomes for proxy in item.proxies):
            queue.return_item(session, item, self.owner)
            return
        raised = {p: outcomes[p].error for p in item.proxies if p not in stored and outcomes[p].error}
        notes = raised or {p: stored[p].error for p in item.proxies if stored[p].error}
        error = "; ".join(f"{proxy}: {problem}" for proxy, problem in notes.items()) or None
        if raised:
            log.warning("batch %d: %s failed: %s", item.job_id, item.arch, error)
        queue.finish_item(session, item, self.owner, failed=bool(raised), error=error)

    def _wait(self) -> set[Future[TaskResult]]:
        if not self._futures:
            self._wakeup.wait(self.poll_seconds)
            self._wakeup.clear()
            return set()
        done, _ = wait(list(self._futures), timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
        return done

    def _collect(self, done: set[Future[TaskResult]]) -> None:
        for future in done:
            flight = self._futures.pop(future)
            del self._by_key[flight.key]
            try:
                self._record(flight, future.result())
            except WorkerDied as error:
                self._release(flight.items, str(error))
            except TaskError as error:
                self._fail(flight.items, str(error))

    def _record(self, flight: _InFlight, result: TaskResult) -> None:
        self.database.transact(lambda session: self._store_result(session, flight, result))

    def _store_result(self, session: Session, flight: _InFlight, result: TaskResult) -> None:
        config_id, space_id, canonical_key = flight.key
        member_ids = [member.id for member in class_members(session, space_id, canonical_key)]
        record_scores(
            session,
            member_ids=member_ids,
            computed_from_id=flight.representative_id,
            config_id=config_id,
            outcomes=result.outcomes,
            device=result.device,
            torch_version=result.torch_version,
        )
        for item in flight.items:
            self._settle(session, item, result.outcomes)
        jobs.complete_cached_items_everywhere(session, config_id, member_ids)

    def _fail(self, items: list[ClaimedItem], error: str) -> None:
        for item in items:
            log.warning("batch %d: %s failed: %s", item.job_id, item.arch, error)

        def fail_all(session: Session) -> None:
            for item in items:
                queue.finish_item(session, item, self.owner, failed=True, error=error)

        self.database.transact(fail_all)

    def _release(self, items: list[ClaimedItem], error: str) -> None:
        log.warning("%s", error)

        def release_all(session: Session) -> None:
            for item in items:
                queue.release_item(session, item, self.owner, error, self.max_attempts)

        self.database.transact(release_all)
