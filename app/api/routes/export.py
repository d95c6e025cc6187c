"""GET /v1/export: one configuration's scored population as a CSV download or as the NAS-Bench-Suite-Zero
JSON that NASLib's zero-cost analyses read."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.api import examples
from app.api.auth import require_read
from app.api.deps import PopulationDep, ReadSession
from app.services.reports import export_population

router = APIRouter(
    prefix="/v1",
    tags=["reports"],
    dependencies=[Depends(require_read)],
    responses=examples.error_responses(*examples.READ_ERRORS),
)


@router.get(
    "/export",
    summary="Download a population's scores",
    response_class=Response,
    responses={
        200: {
            "description": "`format=csv`: a CSV file; `format=naslib`: NAS-Bench-Suite-Zero's JSON",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": examples.EXPORT_CSV},
                "application/json": {"schema": {"type": "object"}, "example": examples.EXPORT_NASLIB},
            },
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="nasscore-<space>-<dataset>-<fingerprint[:12]>.csv" (.json)',
                    "schema": {"type": "string"},
                }
            },
        },
        **examples.error_responses(404, 422),
    },
)
def get_export(
    session: ReadSession,
    selection: PopulationDep,
    export_format: Annotated[str, Query(alias="format", description="'csv' or 'naslib'")] = "csv",
) -> Response:
    """Every cell of one configuration's population (chosen as for the leaderboard), by ascending id, as a
    download. `csv`: one row per cell with its isomorphism class, the configuration's fingerprint, each
    proxy's score and seconds (`proxies` picks the columns; default all) and the observed accuracy (from
    `source`, chosen as for the leaderboard).
    `naslib`: the JSON that NAS-Bench-Suite-Zero and NASLib's zero-cost analyses read, keyed by dataset and
    by the cell's op-index tuple, with `val_accuracy`. Errors (JSON) as for the leaderboard; `naslib`
    covers NAS-Bench-201 only."""
    exported = export_population(
        session,
        space=selection.space,
        dataset=selection.dataset,
        export_format=export_format,
        config=selection.config,
        metric=selection.metric,
        source=selection.source,
        proxies=selection.proxies,
    )
    disposition = f'attachment; filename="{exported.filename}"'
    return Response(exported.content, media_type=exported.media_type, headers={"Content-Disposition": disposition})
