"""The running service minus HTTP: database, calibration store, worker pool and dispatcher, started and
stopped together. The API server and the local `nasscore batch` both run one."""

import logging

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db import Database
from app.db.migrations import require_current, upgrade
from app.queue.dispatcher import Dispatcher
from app.services import calibration
from app.services.configs import ConfigOptions, ResolvedConfig, resolve_config
from app.services.spaces import seed_space, seeded_at_start
from app.settings import Settings
from app.workers.base import Executor
from scorers.calibration import ImageSet

log = logging.getLogger("nasscore")


def make_executor(settings: Settings) -> Executor:
    """The local process pool, or actors on a Ray cluster (`--executor ray`, an optional extra: without the
    `ray` package this raises RayUnavailable naming how to install it)."""
    if settings.executor == "ray":
        from app.workers.ray_executor import RayExecutor

        return RayExecutor(
            address=settings.ray_address,
            device=settings.device,
            workers=settings.workers,
            workers_per_gpu=settings.workers_per_gpu,
            cpus_per_actor=settings.ray_cpus_per_actor,
            gpu_share=settings.ray_gpus,
            home=settings.home,
            tf32=settings.tf32,
        )
    from app.workers.local import LocalPool, plan_devices

    return LocalPool(
        plan_devices(settings.device, settings.workers, settings.workers_per_gpu),
        tf32=settings.tf32,
        cells_per_worker=settings.cells_per_worker,
    )


def display_url(url: str) -> str:
    """The database URL without its password, for logs and /readyz."""
    return make_url(url).render_as_string(hide_password=True)


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings.resolved_database_url)
        self.store = calibration.CalibrationStore()
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None

    def start(self) -> None:
        self.prepare()
        self.start_workers()

    def prepare(self) -> None:
        """Bring the schema up to date (the embedded SQLite database only; PostgreSQL is upgraded explicitly
        with `nasscore db upgrade`), store the spaces that are stored whole (app.services.spaces says which
        and why) and seed the calibration data."""
        from search_spaces import SPACES

        if self.database.is_sqlite:
            upgrade(self.database.url)
        require_current(self.database.engine)
        log.info("database: %s", display_url(self.database.url))
        with self.database.session() as session:
            for space in SPACES.values():
                if seeded_at_start(space):
                    seed_space(session, space.name)
            self._seed_data(session)
        self._log_data()

    def start_workers(self) -> None:
        self.executor = make_executor(self.settings)
        self.dispatcher = Dispatcher(
            self.database,
            self.executor,
            self.store,
            poll_seconds=self.settings.poll_seconds,
            lease_seconds=self.settings.lease_seconds,
            max_attempts=self.settings.max_attempts,
        )
        self.dispatcher.start()
        log.info("workers: %s", self.executor.health())

    def _seed_data(self, session: Session) -> None:
        data_dir = self.settings.resolved_data_dir
        for dataset, outcome in calibration.import_data_directory(session, self.store, data_dir).items():
            log.info("data directory %s: %s <- %s", data_dir, dataset, outcome)
        for dataset in calibration.ensure_builtin_pools(session, self.store):
            log.info("data: %s has no operator data; using the real set shipped with nasscore", dataset)

    def _log_data(self) -> None:
        with self.database.read_session() as session:
            for data in calibration.describe_datasets(session):
                if data.pool_digest is not None:  # data.real
                    log.info(
                        "data: %s = %d real images, sha256:%s (%s)",
                        data.dataset,
                        data.images,
                        data.pool_digest[:12],
                        data.origin,
                    )
                else:
                    log.info(
                        "data: %s has no real images (add them with %s)",
                        data.dataset,
                        calibration.add_command(data.dataset),
                    )

    def resolve(
        self, dataset: str, options: ConfigOptions, images: ImageSet | None = None, *, space: str
    ) -> ResolvedConfig:
        """Bind request options for `space`'s networks to a calibration batch (reads only; store it with
        `get_or_create_config`)."""
        with self.database.read_session() as session:
            return resolve_config(session, self.store, dataset, options, images, space=space)

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.executor is not None:
            self.executor.shutdown()
        self.database.dispose()

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
