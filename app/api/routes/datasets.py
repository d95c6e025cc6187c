"""Datasets and the real calibration data the service holds for each (added by the operator with
`nasscore data add`, or the small CIFAR-10 set shipped with the package)."""

from fastapi import APIRouter, Depends

from app.api import examples
from app.api.auth import require_read
from app.api.deps import ReadSession
from app.api.schemas import DatasetOut
from app.api.views import dataset_out
from app.services.calibration import describe_datasets

router = APIRouter(
    prefix="/v1",
    tags=["datasets"],
    dependencies=[Depends(require_read)],
    responses=examples.error_responses(*examples.READ_ERRORS),
)


@router.get(
    "/datasets",
    response_model=list[DatasetOut],
    responses={200: examples.json_response("Every known dataset", examples.DATASETS)},
    summary="List datasets and their calibration data",
    description="Every dataset the service can score on, whether real calibration images are stored for it "
    "(how many, their SHA-256 and origin), and the command that adds them when there are none. Without real "
    'data a dataset can still be scored with `config.data = "synthetic"`.',
)
def list_datasets(session: ReadSession) -> list[DatasetOut]:
    return [dataset_out(data) for data in describe_datasets(session)]
