"""POST /v1/architectures/onnx: a network uploaded as an ONNX file (a multipart form's `file`), read and
checked, stored once per structure, and answered with its architecture — `onnx:<digest>`, what
`POST /v1/scores` and `/v1/batches` then take as `arch` with `"space": "onnx"`."""

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.api import examples
from app.api.auth import WriteAccess
from app.api.deps import RuntimeDep
from app.api.schemas import ErrorResponse, OnnxArchitectureOut
from app.services.onnx_models import StoredOnnx, upload_onnx

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])
UPLOAD_PATH = "/v1/architectures/onnx"


@router.post(
    "/onnx",
    summary="Upload a network as an ONNX file",
    status_code=201,
    response_model=OnnxArchitectureOut,
    responses={
        201: examples.json_response("Stored: the network's architecture", examples.ONNX_ARCHITECTURE),
        200: {
            "model": OnnxArchitectureOut,
            **examples.json_response(
                "A network of this structure was stored before (maybe with other weights): its architecture",
                examples.ONNX_ARCHITECTURE,
            ),
        },
        400: {
            "model": ErrorResponse,
            **examples.json_response("The body is not a readable multipart form", examples.UNREADABLE_FORM),
        },
        **examples.error_responses(413, 422, *examples.WRITE_ERRORS),
    },
)
async def post_onnx(
    file: Annotated[
        UploadFile, File(description="The ONNX file (`curl -F file=@net.onnx`); its weights are not needed")
    ],
    runtime: RuntimeDep,
    principal: WriteAccess,
    response: Response,
) -> OnnxArchitectureOut:
    """Reads an image classifier exported as ONNX (e.g. `torch.onnx.export(model, images, "net.onnx",
    dynamo=False, training=torch.onnx.TrainingMode.TRAINING, dynamic_axes={"images": {0: "N"}},
    export_params=False)`) and stores it under the SHA-256 of its structure: its operators, their attributes
    and connections, and its weights' shapes — not the weights themselves, which scoring never uses (a
    network is scored at initialisation, from the configuration's seed), and not its names. Score it with
    `{"space": "onnx", "arch": "onnx:<digest>"}`.

    The file is data, never code: standard ONNX operators only (the 422 of any other lists those supported),
    no custom domains, functions or external data, at most 5 MiB, 2,000 nodes and 50 million parameters. It
    must take images [N, 3, H, W] and put out logits [N, classes]; a request scores it only on a dataset of
    that image size and number of classes. 201: stored now; 200: a network of the same structure was stored
    before (maybe with other weights); 413: the file is too large; 422 names the problem."""
    data = await file.read()
    stored = await run_in_threadpool(upload_onnx, runtime.database, data, "file")
    if not stored.created:
        response.status_code = 200
    return onnx_architecture_out(stored)


def onnx_architecture_out(stored: StoredOnnx) -> OnnxArchitectureOut:
    architecture, model = stored.architecture, stored.model
    return OnnxArchitectureOut(
        id=architecture.id,
        space="onnx",
        arch=architecture.arch,
        canonical_key=architecture.canonical_key,
        benchmark_index=architecture.benchmark_index,
        digest=model.digest,
        nodes=model.nodes,
        parameters=model.parameters,
        input_shape=list(model.input_shape),
        num_classes=model.num_classes,
        file_bytes=model.size_bytes,
    )
