"""The running service minus HTTP: database, calibration catalog, worker pool and dispatcher, started and
stopped together. The API server and the local `nasscore batch` both run one."""

import logging

from app.db import Database
from app.db.migrations import require_current
from app.services.configs import DataCatalog
from app.services.spaces import seed_space
from app.settings import Settings
from app.workers.base import Executor
from app.workers.dispatcher import Dispatcher

log = logging.getLogger("nasscore")


def make_local_executor(settings: Settings) -> Executor:
    from app.workers.local import LocalPool, plan_devices

    return LocalPool(plan_devices(settings.device, settings.workers))


class Runtime:
    def __init__(self, settings: Settings, *, extra_sources: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.database = Database(settings.resolved_database_url)
        self.catalog = DataCatalog(settings.resolved_data_dir, extra_sources)
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None

    def start(self) -> None:
        """Check the schema, seed the search spaces, then start the workers and the dispatcher."""
        from search_spaces import SPACES

        require_current(self.database.engine)
        with self.database.session() as session:
            for name in SPACES:
                seed_space(session, name)
        self.executor = make_local_executor(self.settings)
        self.dispatcher = Dispatcher(
            self.database,
            self.executor,
            self.catalog,
            poll_seconds=self.settings.poll_seconds,
            lease_seconds=self.settings.lease_seconds,
            max_attempts=self.settings.max_attempts,
        )
        self.dispatcher.start()
        log.info("workers: %s", self.executor.health())

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.executor is not None:
            self.executor.shutdown()
        self.database.dispose()

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
