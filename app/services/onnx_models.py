"""ONNX files of the `onnx` search space: read and checked on the way in (before anything is stored), stored
once per structure digest together with their architecture `onnx:<digest>`, and handed with each task to the
worker that scores them.

A request gives an ONNX architecture as `{"onnx_base64": "..."}` (the file, stored on the way) or as the text
`onnx:<digest>` of a file stored before (404 naming the field otherwise); `POST /v1/architectures/onnx`
uploads one as a multipart file. The architecture row and the file are written in one transaction, so an
`onnx` architecture is stored exactly when its file is. A network must fit the dataset it is scored on: its
input the dataset's image size, its logits the dataset's classes; and it is held to the server's memory
budget by its own size, not the space's largest.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import Architecture, OnnxModel, SearchSpace
from app.db.upsert import insert_ignore
from app.services.configs import known_datasets
from app.services.errors import InvalidInput, NotFound, TooLarge
from app.services.spaces import architectures_for_strings, ensure_space
from search_spaces import SPACES, NetworkSize
from search_spaces.onnx import BASE64_FIELD, OnnxFileTooLarge, OnnxGraph, OnnxSpace, decode_upload

ONNX = OnnxSpace.name
UPLOAD_ROUTE = "POST /v1/architectures/onnx"


@dataclass(frozen=True)
class OnnxUpload:
    """A file read and checked, not stored yet."""

    data: bytes
    graph: OnnxGraph


@dataclass(frozen=True)
class NetworkFigures:
    """What the service checks a request against: the network's input and output, and its size."""

    input_shape: tuple[int, ...]
    num_classes: int
    parameters: int
    saved_floats_per_image: int

    @classmethod
    def of(cls, source: OnnxGraph | OnnxModel) -> "NetworkFigures":
        if isinstance(source, OnnxGraph):
            return cls(source.input_shape, source.num_classes, source.parameter_count, source.saved_floats_per_image)
        return cls(tuple(source.input_shape), source.num_classes, source.parameters, source.saved_floats_per_image)


@dataclass(frozen=True)
class StoredOnnx:
    """An uploaded file's architecture and stored model; `created` is False when the structure was stored
    already (the same network, maybe with other weights)."""

    architecture: Architecture
    model: OnnxModel
    created: bool


def onnx_space() -> OnnxSpace:
    return cast(OnnxSpace, SPACES[ONNX])


def read_upload(data: bytes, field: str) -> OnnxUpload:
    """The file's checked structure: 413 over the size limit, 422 naming `field` with what is wrong."""
    try:
        return OnnxUpload(data, onnx_space().load(data))
    except OnnxFileTooLarge as error:
        raise TooLarge(field, str(error)) from None
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None


def read_arch(arch: object, field: str) -> OnnxUpload | str:
    """An architecture as a request gives it: a file (`{"onnx_base64": ...}`) read, or a stored one's text."""
    if isinstance(arch, dict):
        try:
            data = decode_upload(arch)
        except OnnxFileTooLarge as error:
            raise TooLarge(f"{field}.{BASE64_FIELD}", str(error)) from None
        except ValueError as error:
            raise InvalidInput(field, str(error)) from None
        return read_upload(data, field)
    try:
        return onnx_space().parse(arch)
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None


def upload_onnx(database: Database, data: bytes, field: str = "file") -> StoredOnnx:
    """Store an uploaded file (checked first, outside any transaction) with its architecture."""
    upload = read_upload(data, field)
    return database.transact(lambda session: store_upload(session, ensure_space(session, ONNX), upload))


def store_upload(session: Session, space: SearchSpace, upload: OnnxUpload) -> StoredOnnx:
    """The file stored under its structure digest unless one with that structure is, and its architecture."""
    graph = upload.graph
    stored = _stored_models(session, [graph.digest])
    if graph.digest not in stored:
        row = {
            "digest": graph.digest,
            "content": upload.data,
            "file_sha256": hashlib.sha256(upload.data).hexdigest(),
            "size_bytes": len(upload.data),
            "nodes": graph.nodes,
            "parameters": graph.parameter_count,
            "saved_floats_per_image": graph.saved_floats_per_image,
            "input_shape": list(graph.input_shape),
            "num_classes": graph.num_classes,
        }
        insert_ignore(session, OnnxModel.__table__, [row], unique=["digest"])
    row = {"space_id": space.id, "arch": graph.arch, "canonical_key": graph.arch}
    insert_ignore(session, Architecture.__table__, [row], unique=["space_id", "arch"])
    [architecture] = architectures_for_strings(session, space, [graph.arch])
    model = _stored_models(session, [graph.digest])[graph.digest]
    return StoredOnnx(architecture, model, created=graph.digest not in stored)


def onnx_architectures(
    session: Session, space: SearchSpace, archs: Sequence[object], field: str, *, indexed: bool = True
) -> list[Architecture]:
    """Rows for a request's `onnx` architectures, de-duplicated in order: files stored on the way, texts of
    stored files looked up (404 naming `field[position]`, or `field` when not `indexed`, for any other)."""
    texts = []
    for position, arch in enumerate(archs):
        where = f"{field}[{position}]" if indexed else field
        read = read_arch(arch, where)
        if isinstance(read, OnnxUpload):
            texts.append(store_upload(session, space, read).architecture.arch)
        else:
            _require_stored(session, [(where, read)])
            texts.append(read)
    return architectures_for_strings(session, space, texts)


def check_onnx_request(
    database: Database, space: str, archs: Sequence[object], dataset: str, field: str, *, indexed: bool = True
) -> NetworkSize | None:
    """For the `onnx` space (None for any other): every architecture read or found stored (422/404 naming
    `field[position]`, or `field`, as `onnx_architectures`), and checked to fit `dataset` — its input the
    dataset's images, its logits the dataset's classes. Returns the largest parameters and activations among
    them, the size the memory check holds a batch of these networks to. Reads only."""
    if space != ONNX:
        return None
    figures: list[tuple[str, NetworkFigures]] = []
    texts: list[tuple[str, str]] = []
    for position, arch in enumerate(archs):
        where = f"{field}[{position}]" if indexed else field
        read = read_arch(arch, where)
        if isinstance(read, OnnxUpload):
            figures.append((where, NetworkFigures.of(read.graph)))
        else:
            texts.append((where, read))
    if texts:
        with database.read_session() as session:
            stored = _require_stored(session, texts)
        figures += [(where, NetworkFigures.of(stored[text.removeprefix("onnx:")])) for where, text in texts]
    for where, network in figures:
        check_fits(network, dataset, where)
    return NetworkSize(
        max(network.parameters for _, network in figures),
        max(network.saved_floats_per_image for _, network in figures),
    )


def check_fits(network: NetworkFigures, dataset: str, field: str) -> None:
    spec = known_datasets()[dataset]
    images = (3, spec.image_size, spec.image_size)
    if tuple(network.input_shape) != images:
        raise InvalidInput(
            field,
            f"the network takes images of shape {_shape(network.input_shape)}, but {dataset} images are "
            f"{_shape(images)}",
        )
    if network.num_classes != spec.num_classes:
        raise InvalidInput(
            field, f"the network puts out {network.num_classes} logits, but {dataset} has {spec.num_classes} classes"
        )


def architecture_data(session: Session, space: str, arch: str) -> bytes | None:
    """What a worker needs besides the text to build `arch`: its ONNX file for the `onnx` space, else None."""
    if space != ONNX:
        return None
    digest = arch.removeprefix("onnx:")
    content = session.execute(select(OnnxModel.content).where(OnnxModel.digest == digest)).scalar_one_or_none()
    if content is None:
        raise NotFound("arch", f"no ONNX file is stored for {arch}")
    return content


def _require_stored(session: Session, texts: Sequence[tuple[str, str]]) -> dict[str, OnnxModel]:
    stored = _stored_models(session, [text.removeprefix("onnx:") for _, text in texts])
    for where, text in texts:
        if text.removeprefix("onnx:") not in stored:
            raise NotFound(
                where,
                f"no ONNX file is stored for {text}; upload it ({UPLOAD_ROUTE}) or send the file as "
                f'{{"{BASE64_FIELD}": "..."}}',
            )
    return stored


def _stored_models(session: Session, digests: Sequence[str]) -> dict[str, OnnxModel]:
    query = select(OnnxModel).where(OnnxModel.digest.in_(list(dict.fromkeys(digests))))
    return {model.digest: model for model in session.execute(query).scalars()}


def _shape(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))
