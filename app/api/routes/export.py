"""GET /v1/export: one configuration's scored population as a CSV download or as the NAS-Bench-Suite-Zero
JSON that NASLib's zero-cost analyses read."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import ReadSession
from app.api.routes.leaderboard import ERRORS, PopulationDep
from app.services.reports import export_population

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}, **ERRORS},
)
def get_export(
    session: ReadSession,
    selection: PopulationDep,
    export_format: Annotated[str, Query(alias="format", description="'csv' or 'naslib'")] = "csv",
) -> Response:
    exported = export_population(
        session,
        space=selection.space,
        dataset=selection.dataset,
        export_format=export_format,
        config=selection.config,
        metric=selection.metric,
        proxies=selection.proxies,
    )
    disposition = f'attachment; filename="{exported.filename}"'
    return Response(exported.content, media_type=exported.media_type, headers={"Content-Disposition": disposition})
