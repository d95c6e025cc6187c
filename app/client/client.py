"""`Client`: the nasscore HTTP API as Python calls, answering with the API's own response models."""

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from pydantic import TypeAdapter

from app.api.schemas import (
    ArchitectureDetail,
    ArchitectureOut,
    BatchOut,
    DatasetOut,
    JobRef,
    Page,
    Readiness,
    ScoreAccepted,
    ScoreResponse,
)
from app.client.batches import Batch
from app.client.errors import NasscoreError
from app.client.observations import Observations
from app.client.results import Correlations, Export, Leaderboard
from app.client.transport import Transport
from app.services.configs import ConfigIn

Arch = str | Sequence[str]  # a cell string, or its op names in edge order
Config = ConfigIn | Mapping[str, Any]
LEADERBOARD_PAGE_LIMIT = 1000  # the API's largest page, used to fetch whole leaderboards
_DATASETS = TypeAdapter(list[DatasetOut])


class Client:
    """A nasscore server at `url`, e.g. `Client("http://127.0.0.1:8000")`.

    `api_key`: sent as `Authorization: Bearer`; None reads $NASSCORE_API_KEY (when set), "" sends none. A
    key about to go over plain HTTP to another machine issues a PlainHttpKeyWarning. `timeout`: seconds
    for each request (connect, send, read). `retries`, `backoff`, `max_wait`: see Transport (retries after
    a connection failure, a 429 or a 503, honouring Retry-After up to `max_wait` seconds). Every failure
    raises NasscoreError. Thread-safe; a context manager closes its connections."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 120.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._transport = Transport(url, api_key, timeout=timeout, retries=retries, backoff=backoff, max_wait=max_wait)
        self.observations = Observations(self._transport)

    # Scoring

    @overload
    def score(
        self,
        arch: Arch,
        space: str = ...,
        dataset: str = ...,
        proxies: Sequence[str] | None = ...,
        preset: str | None = ...,
        config: Config | None = ...,
        *,
        vote_proxies: Sequence[str] | None = ...,
        method: str | None = ...,
        wait: Literal[True] = ...,
    ) -> ScoreResponse: ...

    @overload
    def score(
        self,
        arch: Arch,
        space: str = ...,
        dataset: str = ...,
        proxies: Sequence[str] | None = ...,
        preset: str | None = ...,
        config: Config | None = ...,
        *,
        vote_proxies: Sequence[str] | None = ...,
        method: str | None = ...,
        wait: bool,
    ) -> ScoreResponse | ScoreAccepted: ...

    def score(
        self,
        arch: Arch,
        space: str = "nb201",
        dataset: str = "cifar10",
        proxies: Sequence[str] | None = None,
        preset: str | None = None,
        config: Config | None = None,
        *,
        vote_proxies: Sequence[str] | None = None,
        method: str | None = None,
        wait: bool = True,
    ) -> ScoreResponse | ScoreAccepted:
        """Score one architecture (POST /v1/scores): every proxy's value and the vote's rank among the
        classes scored under the same configuration. `proxies`: what to compute (default: the mission three
        and the default preset's voters); the vote: `preset`, or `vote_proxies` with `method`; `config`: a
        ConfigIn or its fields as a dict (batch_size, channels, data, ...).

        With `wait` (the default), blocks until the scores are stored and returns the ScoreResponse. Without
        it, returns at once: the ScoreResponse when every score was stored already, else the ScoreAccepted
        naming the job (`self.get_batch(accepted.job.id)` follows it)."""
        body = {
            "space": space,
            "arch": _arch(arch),
            "dataset": dataset,
            "proxies": None if proxies is None else list(proxies),
            "config": _config(config),
            "vote": _without_none(
                {"preset": preset, "proxies": None if vote_proxies is None else list(vote_proxies), "method": method}
            )
            or None,
        }
        body = _without_none(body)
        followed: JobRef | None = None
        while True:
            answer = self._post_score(body, server_wait=self._server_wait() if wait else 0.0)
            if isinstance(answer, ScoreAccepted) and wait:
                final = self.get_batch(answer.job.id).wait()  # then ask again: the scores are stored now
                followed = answer.job.model_copy(update={"status": final.status})
                continue
            if followed is not None and isinstance(answer, ScoreResponse):
                # What the server answers when it waits long enough: computed for this request, by that job.
                return answer.model_copy(update={"cached": False, "job": followed})
            return answer

    def _post_score(self, body: dict[str, Any], server_wait: float) -> ScoreResponse | ScoreAccepted:
        response = self._transport.request("POST", "/v1/scores", params={"wait": server_wait}, json=body)
        if response.status_code == 202:
            return ScoreAccepted.model_validate_json(response.content)
        return ScoreResponse.model_validate_json(response.content)

    def _server_wait(self) -> float:
        """How long the server may hold a score request open: well within this client's read timeout (the
        server caps it at its own sync wait)."""
        return self.timeout / 2

    def batch(
        self,
        archs: Sequence[Arch] | None = None,
        *,
        sample: int | None = None,
        seed: int = 0,
        all_archs: bool = False,
        space: str = "nb201",
        dataset: str = "cifar10",
        proxies: Sequence[str] | None = None,
        config: Config | None = None,
        resume: bool = True,
    ) -> Batch:
        """Start scoring many architectures in the background (POST /v1/batches): exactly one of `archs`,
        `sample` (that many distinct cells drawn with `seed`) or `all_archs`. With `resume`, an identical
        unfinished batch is returned instead of a new one. `.wait(progress=True)` follows it."""
        body = {
            "space": space,
            "dataset": dataset,
            "proxies": None if proxies is None else list(proxies),
            "config": _config(config),
            "archs": None if archs is None else [_arch(a) for a in archs],
            "sample": None if sample is None else {"n": sample, "seed": seed},
            "all": all_archs or None,
            "resume": resume,
        }
        response = self._transport.request("POST", "/v1/batches", json=_without_none(body))
        return Batch(self._transport, BatchOut.model_validate_json(response.content))

    def get_batch(self, batch_id: int) -> Batch:
        """A batch (or a score request's job) by id, with its progress now."""
        response = self._transport.request("GET", f"/v1/batches/{batch_id}")
        return Batch(self._transport, BatchOut.model_validate_json(response.content))

    def batches(self, status: str | None = None, limit: int = 100, offset: int = 0) -> Page[BatchOut]:
        """Every job, newest first, optionally only those in `status`."""
        params = {"status": status, "limit": limit, "offset": offset}
        response = self._transport.request("GET", "/v1/batches", params=params)
        return Page[BatchOut].model_validate_json(response.content)

    # Reports

    def leaderboard(
        self,
        space: str = "nb201",
        dataset: str = "cifar10",
        config: str | None = None,
        preset: str | None = None,
        proxies: Sequence[str] | None = None,
        method: str | None = None,
        *,
        metric: str | None = None,
        source: str | None = None,
        rank_by: str | None = None,
        expand: Literal["cells"] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> Leaderboard:
        """One configuration's population ranked by the vote (or `rank_by` a proxy), one row per isomorphism
        class unless `expand="cells"` (GET /v1/leaderboard). `config`: a fingerprint or a unique prefix
        (default: the configuration with the most scores). `limit=None`: every row from `offset` on, fetched
        in pages of 1000."""
        params = {
            **_population(space, dataset, config, metric, source, proxies),
            "preset": preset,
            "method": method,
            "rank_by": rank_by,
            "expand": expand,
        }
        if limit is not None:
            return self._leaderboard_page(params, limit, offset)
        first = self._leaderboard_page(params, LEADERBOARD_PAGE_LIMIT, offset)
        items = list(first.items)
        while offset + len(items) < first.total:
            page = self._leaderboard_page(params, LEADERBOARD_PAGE_LIMIT, offset + len(items))
            if not page.items:  # the population shrank meanwhile
                break
            items.extend(page.items)
        return first.model_copy(update={"items": items, "limit": len(items)})

    def _leaderboard_page(self, params: dict[str, Any], limit: int, offset: int) -> Leaderboard:
        response = self._transport.request("GET", "/v1/leaderboard", params=params | {"limit": limit, "offset": offset})
        return Leaderboard.model_validate_json(response.content)

    def correlations(
        self,
        space: str = "nb201",
        dataset: str = "cifar10",
        config: str | None = None,
        preset: str | None = None,
        proxies: Sequence[str] | None = None,
        method: str | None = None,
        *,
        metric: str | None = None,
        source: str | None = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        top_fraction: float | None = None,
    ) -> Correlations:
        """How well each voting proxy and the vote predict the observed accuracies (GET /v1/correlations):
        Spearman rho with p-value and bootstrap CI, Kendall tau, top-k figures; per isomorphism class, and
        per cell under `per_cell`. The population and vote are chosen as for `leaderboard`."""
        params = {
            **_population(space, dataset, config, metric, source, proxies),
            "preset": preset,
            "method": method,
            "bootstrap": bootstrap,
            "seed": seed,
            "top_fraction": top_fraction,
        }
        return Correlations.model_validate_json(
            self._transport.request("GET", "/v1/correlations", params=params).content
        )

    def correlation_plot(
        self,
        space: str = "nb201",
        dataset: str = "cifar10",
        config: str | None = None,
        preset: str | None = None,
        proxies: Sequence[str] | None = None,
        method: str | None = None,
        *,
        metric: str | None = None,
        source: str | None = None,
    ) -> bytes:
        """The correlation plot as PNG bytes (GET /v1/correlations/plot.png)."""
        params = {**_population(space, dataset, config, metric, source, proxies), "preset": preset, "method": method}
        return self._transport.request("GET", "/v1/correlations/plot.png", params=params).content

    def export(
        self,
        space: str = "nb201",
        dataset: str = "cifar10",
        config: str | None = None,
        *,
        format: Literal["csv", "naslib"] = "csv",
        proxies: Sequence[str] | None = None,
        metric: str | None = None,
        source: str | None = None,
    ) -> Export:
        """A population's scores as a download (GET /v1/export): `csv` (one row per cell; `proxies` picks
        the score columns) or `naslib` (NAS-Bench-Suite-Zero's JSON). `.save(path)`, `.to_pandas()`."""
        params = {**_population(space, dataset, config, metric, source, proxies), "format": format}
        response = self._transport.request("GET", "/v1/export", params=params)
        filename = response.headers.get("content-disposition", "").partition('filename="')[2].rstrip('"')
        media_type = response.headers.get("content-type", "application/octet-stream")
        return Export(response.content, media_type, filename or f"nasscore-export.{format}")

    # Architectures, datasets, health

    def architecture(self, architecture_id: int) -> ArchitectureDetail:
        """One architecture with every score stored for it (per configuration) and its observations."""
        response = self._transport.request("GET", f"/v1/architectures/{architecture_id}")
        return ArchitectureDetail.model_validate_json(response.content)

    def architectures(
        self,
        space: str = "nb201",
        *,
        dataset: str | None = None,
        canonical: str | None = None,
        arch: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ArchitectureOut]:
        """Stored architectures by ascending id: one isomorphism class (`canonical`), one cell (`arch`), or
        those scored or observed on `dataset`."""
        params = {"space": space, "dataset": dataset, "canonical": canonical, "arch": arch}
        response = self._transport.request(
            "GET", "/v1/architectures", params=params | {"limit": limit, "offset": offset}
        )
        return Page[ArchitectureOut].model_validate_json(response.content)

    def datasets(self) -> list[DatasetOut]:
        """The datasets and the real calibration data the server holds for each."""
        return _DATASETS.validate_json(self._transport.request("GET", "/v1/datasets").content)

    def readiness(self) -> Readiness:
        """GET /readyz as it is, ready or not (a 503 is an answer here, not an error)."""
        return Readiness.model_validate_json(self._transport.request("GET", "/readyz", answers=(503,)).content)

    def wait_ready(self, timeout: float = 120.0, poll_seconds: float = 0.5) -> Readiness:
        """Block until the server is ready to score (its database, workers and dispatcher are up)."""
        deadline = time.monotonic() + timeout
        while (ready := self.readiness()).status != "ready":
            if time.monotonic() >= deadline:
                checks = f"database {ready.database}, dispatcher {ready.dispatcher}"
                raise NasscoreError(f"{self.url} not ready after {timeout} s: {checks}", status=503)
            time.sleep(poll_seconds)
        return ready

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def _arch(arch: Arch) -> str | list[str]:
    return arch if isinstance(arch, str) else list(arch)


def _config(config: Config | None) -> dict[str, Any] | None:
    if config is None:
        return None
    return config.model_dump() if isinstance(config, ConfigIn) else dict(config)


def _population(
    space: str,
    dataset: str,
    config: str | None,
    metric: str | None,
    source: str | None,
    proxies: Sequence[str] | None,
) -> dict[str, Any]:
    """The query parameters that pick a population (shared by the leaderboard, the reports and the export)."""
    return {
        "space": space,
        "dataset": dataset,
        "config": config,
        "metric": metric,
        "source": source,
        "proxies": None if proxies is None else list(proxies),
    }


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    """A body without its unset fields, so the server's defaults apply."""
    return {name: value for name, value in fields.items() if value is not None}
