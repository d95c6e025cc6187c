"""Every OpenAPI operation is documented: a summary, a description, an example for its request body and for
each successful JSON response, declared media types for files, and the ErrorResponse body for client errors.
Each example is validated against the model it documents, so none can drift from the wire format."""

import importlib
import pkgutil
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from app.api import routes
from app.api.app import create_app
from app.api.schemas import BatchRequest, ErrorResponse, ObservationIn, ScoreRequest

SCHEMA = create_app().openapi()
# The routers `include_all` mounts, read directly: newer FastAPI nests included routes inside `app.routes`.
ROUTERS = [
    importlib.import_module(f"{routes.__name__}.{module.name}").router
    for module in pkgutil.iter_modules(routes.__path__)
    if not module.name.startswith("_")
]
ROUTES = {
    (method.lower(), route.path_format): route  # the path as OpenAPI writes it (no {id:int} convertor)
    for router in ROUTERS
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods
}
OPERATIONS = {(method, path): operation for path, item in SCHEMA["paths"].items() for method, operation in item.items()}
REQUEST_MODELS = {
    ("post", "/v1/scores"): ScoreRequest,
    ("post", "/v1/batches"): BatchRequest,
    ("post", "/v1/observations"): ObservationIn | list[ObservationIn],
}
UPLOADS = {("post", "/v1/architectures/onnx"): "file"}
"""Operations that take a file as a multipart form (its field) instead of a JSON body."""
FILE_MEDIA_TYPES = {
    ("get", "/v1/correlations/plot.png"): {"image/png"},
    ("get", "/v1/export"): {"text/csv", "application/json"},
}
JSON = "application/json"


def _ids(keys: Any) -> list[str]:
    return [f"{method.upper()} {path}" for method, path in keys]


def _served_examples(media: dict[str, Any]) -> list[Any]:
    """The media type's `example` and `examples`, and the `examples` of the schema it references."""
    found = [media["example"]] if "example" in media else []
    found += [example["value"] for example in media.get("examples", {}).values()]
    reference = media.get("schema", {}).get("$ref")
    if reference is not None:
        found += SCHEMA["components"]["schemas"][reference.rsplit("/", 1)[-1]].get("examples", [])
    return found


def _declared(route: APIRoute, status: str) -> tuple[Any, dict[str, Any]]:
    """The model documenting a response of `route`, and its `responses` entry as declared in the code.

    Examples are validated as declared: FastAPI drops every null from the examples it serves."""
    declared = route.responses.get(int(status), {})
    model = declared.get("model") or (route.response_model if int(status) == (route.status_code or 200) else None)
    return model, declared


def _assert_round_trips(model: Any, example: Any) -> None:
    """The example is exactly what the model serialises: no unknown, missing or mistyped field."""
    adapter = TypeAdapter(model)
    assert adapter.dump_python(adapter.validate_python(example), mode="json") == example


@pytest.mark.parametrize("key", OPERATIONS, ids=_ids(OPERATIONS))
def test_operation_has_summary_and_description(key: tuple[str, str]) -> None:
    operation = OPERATIONS[key]
    assert operation.get("summary", "").strip()
    assert operation.get("description", "").strip()


@pytest.mark.parametrize("key", REQUEST_MODELS, ids=_ids(REQUEST_MODELS))
def test_request_examples_validate(key: tuple[str, str]) -> None:
    examples = _served_examples(OPERATIONS[key]["requestBody"]["content"][JSON])
    assert examples
    for example in examples:
        TypeAdapter(REQUEST_MODELS[key]).validate_python(example)


def test_every_request_body_has_a_model_here() -> None:
    bodies = {key for key, operation in OPERATIONS.items() if "requestBody" in operation}
    assert bodies == set(REQUEST_MODELS) | set(UPLOADS)


@pytest.mark.parametrize("key", UPLOADS, ids=_ids(UPLOADS))
def test_uploads_document_a_multipart_form_with_a_file(key: tuple[str, str]) -> None:
    [(media_type, content)] = OPERATIONS[key]["requestBody"]["content"].items()
    assert media_type == "multipart/form-data"
    form = SCHEMA["components"]["schemas"][content["schema"]["$ref"].rsplit("/", 1)[-1]]
    assert form["required"] == [UPLOADS[key]]
    assert form["properties"][UPLOADS[key]]["contentMediaType"] == "application/octet-stream"


@pytest.mark.parametrize("key", OPERATIONS, ids=_ids(OPERATIONS))
def test_successful_json_responses_have_valid_examples(key: tuple[str, str]) -> None:
    successes = {status: r for status, r in OPERATIONS[key]["responses"].items() if status.startswith("2")}
    assert successes
    for status, response in successes.items():
        if JSON not in response.get("content", {}):
            continue
        assert _served_examples(response["content"][JSON]), f"{status} has no example"
        model, declared = _declared(ROUTES[key], status)
        if model is not None:
            _assert_round_trips(model, declared["content"][JSON]["example"])


@pytest.mark.parametrize("key", OPERATIONS, ids=_ids(OPERATIONS))
def test_client_errors_are_error_responses_with_examples(key: tuple[str, str]) -> None:
    for status, response in OPERATIONS[key]["responses"].items():
        if status.startswith("4"):
            assert response["content"][JSON]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            assert response["description"]
            model, declared = _declared(ROUTES[key], status)
            assert model is ErrorResponse
            _assert_round_trips(ErrorResponse, declared["content"][JSON]["example"])


def test_no_operation_documents_fastapis_own_validation_error() -> None:
    """The app answers 422 with ErrorResponse, so no operation may keep FastAPI's default 422 body."""
    assert "HTTPValidationError" not in SCHEMA["components"]["schemas"]


@pytest.mark.parametrize("key", FILE_MEDIA_TYPES, ids=_ids(FILE_MEDIA_TYPES))
def test_file_responses_declare_their_media_types(key: tuple[str, str]) -> None:
    response = OPERATIONS[key]["responses"]["200"]
    assert set(response["content"]) == FILE_MEDIA_TYPES[key]
    assert response["description"].strip()
    assert all(media.get("schema") for media in response["content"].values())
