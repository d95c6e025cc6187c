"""The dashboard's pages, server-rendered from the same services and response shapes as the JSON API
(a page shows what the matching /v1 request answers), plus one small JSON answer the pages need: who the
key a visitor pasted belongs to, so the batches page offers "cancel" only where the server would accept it.

Pages are public reads: a browser navigating to a page sends no key (the key a visitor pastes lives in the
page's localStorage and goes only on the page's own /v1 requests, such as cancelling a batch). A server
that requires keys for reads (`--auth-reads`) therefore answers the pages with 401 and a page saying so.
A selection with nothing scored is an empty page, not an error; any other service error is shown on the
page with its status."""

from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from app.api.auth import current_principal
from app.api.deps import PopulationDep, PopulationParams, ReadSession, RowId, SettingsDep, VoteDep
from app.api.views import batch_out, correlations_out, leaderboard_out
from app.db.models import MAX_DATABASE_INTEGER
from app.services import batches
from app.services.architectures import ArchitectureFilter, architecture_page, architecture_record
from app.services.errors import NotFound, ServiceError
from app.services.keys import Principal
from app.services.leaderboard import LeaderboardQuery, leaderboard
from app.services.observations import DEFAULT_METRIC
from app.services.reports import MAX_BOOTSTRAP_WORK, ReportQuery, correlations
from app.services.votes import VoteRequest
from app.web.cells import draw_cell
from app.web.charts import vote_rank_scatter
from app.web.templating import render
from scorers.calibration import DATASETS
from scorers.presets import PRESETS
from search_spaces import SPACES

LEADERBOARD_PAGE_SIZE = 50
BATCHES_PAGE_SIZE = 25
# The scatter plot draws every class of the population: NB201 has 6,466, far below this.
EVERY_ROW = 100_000
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_DATABASE_INTEGER, description="Rows to skip")]


class ReadsNeedKey(Exception):
    """The server requires a key for every read (`--auth-reads`), which a page navigation cannot send."""


def public_reads(settings: SettingsDep) -> None:
    if settings.auth_reads:
        raise ReadsNeedKey


@dataclass(frozen=True)
class Selection:
    """A page's population and vote, as the matching /v1 request's parameters."""

    population: PopulationParams
    vote: VoteRequest

    def query_string(self) -> str:
        """The /v1 query for the same population and vote, defaults left out."""
        population, vote = self.population, self.vote
        chosen = {
            "space": population.space,
            "dataset": population.dataset,
            "config": population.config,
            "metric": population.metric if population.metric != DEFAULT_METRIC else None,
            "source": population.source,
            "proxies": ",".join(population.proxies) if population.proxies else None,
            "preset": vote.preset,
            "method": vote.method,
        }
        return urlencode({name: value for name, value in chosen.items() if value is not None})


def page_selection(population: PopulationDep, vote: VoteDep) -> Selection:
    """A selector left at its default option submits an empty value, which means the default."""
    return Selection(
        replace(population, config=population.config or None, source=population.source or None),
        replace(vote, preset=vote.preset or None, method=vote.method or None),
    )


SelectionDep = Annotated[Selection, Depends(page_selection)]
router = APIRouter(include_in_schema=False)
page_router = APIRouter(include_in_schema=False, dependencies=[Depends(public_reads)])


@page_router.get("/")
def leaderboard_view(
    request: Request, session: ReadSession, selection: SelectionDep, offset: OffsetQuery = 0
) -> Response:
    """One page of the leaderboard the API's GET /v1/leaderboard answers for the same parameters."""
    query = LeaderboardQuery(
        **selection.population.query_fields(), vote=selection.vote, limit=LEADERBOARD_PAGE_SIZE, offset=offset
    )
    context = _selectors(selection) | {"active": "leaderboard"}
    try:
        board = leaderboard_out(leaderboard(session, query))
    except ServiceError as error:
        return _population_problem(request, "leaderboard.html", context, error)
    return render(request, "leaderboard.html", context | {"board": board})


@page_router.get("/correlations")
def correlations_view(request: Request, session: ReadSession, selection: SelectionDep) -> Response:
    """GET /v1/correlations as a table, and every observed class at its vote rank against its accuracy."""
    context = _selectors(selection) | {"active": "correlations", "plot_query": selection.query_string()}
    population, vote = selection.population.query_fields(), selection.vote
    try:
        report = correlations_out(correlations(session, ReportQuery(**population, vote=vote), MAX_BOOTSTRAP_WORK))
        ranking = leaderboard(session, LeaderboardQuery(**population, vote=vote, limit=EVERY_ROW))
    except ServiceError as error:
        return _population_problem(request, "correlations.html", context, error)
    return render(
        request, "correlations.html", context | {"report": report, "scatter": vote_rank_scatter(ranking.rows)}
    )


@page_router.get("/batches")
def batches_view(request: Request, session: ReadSession, offset: OffsetQuery = 0) -> Response:
    """Every job, newest first, as GET /v1/batches lists them; batches.js keeps the page live."""
    states, total = batches.list_batches(session, None, BATCHES_PAGE_SIZE, offset)
    items = [batch_out(state) for state in states]
    context = {"active": "batches", "items": items, "total": total, "offset": offset, "limit": BATCHES_PAGE_SIZE}
    return render(request, "batches.html", context)


@page_router.get("/architectures/{architecture_id}")
def architecture_view(request: Request, architecture_id: RowId, session: ReadSession) -> Response:
    """One architecture: a drawing of it, its scores under every configuration, its observations."""
    try:
        record = architecture_record(session, architecture_id)
    except ServiceError as error:
        return _error_page(request, error)
    proxies = sorted({proxy for entry in record.scores for proxy in entry.scores})
    context = {
        "active": None,
        "record": record,
        "proxies": proxies,
        "drawing": draw_cell(record.space, record.architecture.arch),
    }
    return render(request, "architecture.html", context)


@page_router.get("/architectures")
def find_architecture(
    request: Request,
    session: ReadSession,
    arch: Annotated[str, Query(max_length=4096, description="The architecture's string")],
    space: Annotated[str, Query(max_length=64)] = "nb201",
) -> Response:
    """The page of the stored architecture with this string (any spelling the space parses)."""
    try:
        rows, _ = architecture_page(session, ArchitectureFilter(space=space, arch=arch.strip()), limit=1, offset=0)
    except ServiceError as error:
        return _error_page(request, error)
    if not rows:
        return _error_page(request, NotFound("arch", f"no architecture {arch.strip()!r} is stored in {space}"))
    return RedirectResponse(f"/architectures/{rows[0].id}", status_code=303)


@router.get("/dashboard/whoami")
def whoami(settings: SettingsDep, principal: Annotated[Principal | None, Depends(current_principal)]) -> dict[str, Any]:
    """The key the page sends (401 when unknown or revoked): its name and scope; both null when keys are on
    and none was sent. Without keys every client is an anonymous admin, as for the API."""
    return {
        "auth": "on" if settings.auth_enabled else "off",
        "name": principal.name if principal else None,
        "scope": principal.scope.label if principal else None,
    }


def _selectors(selection: Selection) -> dict[str, Any]:
    """What the population and vote selectors offer and which option each has chosen."""
    return {
        "selection": selection.population,
        "preset": selection.vote.preset,
        "spaces": sorted(SPACES),
        "datasets": list(DATASETS),
        "presets": list(PRESETS),
    }


def _population_problem(request: Request, template: str, context: dict[str, Any], error: ServiceError) -> Response:
    """A leaderboard or report page with the problem in place of its content, its selectors kept: a
    selection with nothing scored yet is an empty page (200), anything else answers the error's status."""
    status = 200 if isinstance(error, NotFound) else error.status_code
    return render(request, template, context | {"error": error}, status_code=status)


def _error_page(request: Request, error: ServiceError) -> Response:
    return render(request, "error.html", {"active": None, "error": error}, status_code=error.status_code)
