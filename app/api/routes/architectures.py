"""Architectures: one with every score it has (per configuration) and its observations, or a paginated
list filtered by space, dataset (scored or observed on it) and isomorphism class."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api import examples
from app.api.auth import require_read
from app.api.deps import PageDep, ReadSession, RowId
from app.api.schemas import (
    ArchitectureDetail,
    ArchitectureOut,
    ConfigurationScores,
    ObservationOut,
    Page,
)
from app.api.views import architecture_out, configuration_out, proxy_score
from app.services.architectures import (
    ArchitectureFilter,
    ArchitectureRecord,
    architecture_page,
    architecture_record,
)

router = APIRouter(
    prefix="/v1/architectures",
    tags=["architectures"],
    dependencies=[Depends(require_read)],
    responses=examples.error_responses(*examples.READ_ERRORS),
)


@router.get(
    "/{architecture_id:int}",  # digits only, so that /v1/architectures/onnx is the upload's path alone
    summary="Get an architecture with its scores and observations",
    response_model=ArchitectureDetail,
    responses={
        200: examples.json_response("The architecture", examples.ARCHITECTURE_DETAIL),
        **examples.error_responses(404, 422),
    },
)
def get_architecture_detail(architecture_id: RowId, session: ReadSession) -> ArchitectureDetail:
    """One architecture (its string, isomorphism class and benchmark index) with every score stored for it,
    grouped by configuration, and every accuracy observed for it. Ids come from POST /v1/scores, the
    leaderboard and GET /v1/architectures."""
    return _detail_out(architecture_record(session, architecture_id))


def _detail_out(record: ArchitectureRecord) -> ArchitectureDetail:
    return ArchitectureDetail(
        **architecture_out(record.architecture, record.space).model_dump(),
        scores=[
            ConfigurationScores(
                configuration=configuration_out(entry.config),
                scores={proxy: proxy_score(score) for proxy, score in entry.scores.items()},
            )
            for entry in record.scores
        ],
        observations=[
            ObservationOut(
                dataset=o.dataset,
                metric=o.metric,
                accuracy=o.accuracy,
                epochs=o.epochs,
                source=o.source,
                posted_by=o.posted_by,
                observed_at=o.observed_at,
            )
            for o in record.observations
        ],
    )


@router.get(
    "",
    summary="List architectures",
    response_model=Page[ArchitectureOut],
    responses={
        200: examples.json_response("A page of architectures", examples.ARCHITECTURE_PAGE),
        **examples.error_responses(404, 422),
    },
)
def list_architectures(
    session: ReadSession,
    page: PageDep,
    space: Annotated[str, Query(max_length=64)] = "nb201",
    dataset: Annotated[str | None, Query(max_length=64, description="Scored or observed on this dataset")] = None,
    canonical: Annotated[str | None, Query(description="Canonical key: all members of one isomorphism class")] = None,
    arch: Annotated[str | None, Query(description="One architecture by its string")] = None,
) -> Page[ArchitectureOut]:
    """The stored architectures of one search space, by ascending id: every member of one isomorphism class
    (`canonical`, the leaderboard's `members_url`), one architecture by its string (`arch`), or those scored
    or observed on a `dataset`. The server stores every cell of NAS-Bench-201 at start-up, so unfiltered this
    pages through all 15,625. 422 for an unknown space or cell string; 404 for a space with no architectures
    stored yet."""
    wanted = ArchitectureFilter(space=space, dataset=dataset, canonical=canonical, arch=arch)
    rows, total = architecture_page(session, wanted, page.limit, page.offset)
    items = [architecture_out(row, space) for row in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
