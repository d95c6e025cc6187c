"""Example payloads for the OpenAPI documentation, and the response declarations that carry them.

Every response example was copied from a real server (`nasscore serve`, the README's cell scored with the
default configuration, a 24-cell sample batch, NAS-Bench-201 accuracies as observations), with lists
trimmed and floats rounded; tests/test_openapi.py validates each against its model, so none can drift
from the wire format."""

import base64
from typing import Any

from app.api.schemas import ErrorResponse
from search_spaces import DEFAULT_SPACE, SPACES
from search_spaces.onnx import BASE64_FIELD
from search_spaces.onnx.example import example_model

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
CELL_OPS = ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "skip_connect"]
CANONICAL_KEY = "((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3+((0)@nor_conv_3x3)@nor_conv_3x3+0"
FINGERPRINT = "514b608332faa728927893d5027e23327d526577cdec31d167ecdc985c66dffc"
TINY_FINGERPRINT = "5b503dbe959f99b6ab23e6aa016c50ad9a75d59d7584d4e08fbb60ee647cffe0"
TINY_CONFIG = {"batch_size": 8, "channels": 4, "cells_per_stage": 1}
BEST_VOTERS = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity", "meco", "nwot"]
DEFAULT_PROXIES = ["snip", "grasp", "synflow", *BEST_VOTERS]
BEST_VOTE = {"voters": BEST_VOTERS, "method": "log_rank", "preset": "best"}


def _error(field: str, message: str) -> dict[str, Any]:
    """The body app.api.errors sends for one faulty field."""
    return {"detail": f"{field}: {message}", "errors": [{"field": field, "message": message}]}


def _proxy_score(value: float, seconds: float) -> dict[str, Any]:
    return {"value": value, "seconds": seconds, "device": "cpu", "torch_version": "2.13.0+cpu", "error": None}


def _links(fingerprint: str) -> dict[str, str]:
    query = f"space=nb201&dataset=cifar10&config={fingerprint}"
    return {
        "leaderboard": f"/v1/leaderboard?{query}",
        "correlations": f"/v1/correlations?{query}",
        "correlation_plot": f"/v1/correlations/plot.png?{query}",
        "export": f"/v1/export?{query}&format=csv",
    }


def _batch(batch_id: int, fingerprint: str, **progress: Any) -> dict[str, Any]:
    return {
        "id": batch_id,
        "url": f"/v1/batches/{batch_id}",
        "kind": "batch",
        "space": "nb201",
        "dataset": "cifar10",
        "configuration": fingerprint,
        "proxies": DEFAULT_PROXIES,
        "errors": [],
        "resumed": False,
        "owner": None,
        "links": _links(fingerprint),
        **progress,
    }


# Requests (named examples, as Swagger UI lists them).

SCORE_REQUESTS = {
    "cell": {"summary": "A cell string; default configuration and vote", "value": {"arch": CELL, "dataset": "cifar10"}},
    "ops": {
        "summary": "The six op names in edge order, ranked by the azn preset",
        "value": {"arch": CELL_OPS, "dataset": "cifar10", "vote": {"preset": "azn"}},
    },
    **{
        name: {
            "summary": f"An architecture of the {space.title}",
            "value": {"space": name, "arch": space.example, "dataset": space.datasets[0]},
        }
        for name, space in SPACES.items()
        if name not in (DEFAULT_SPACE, "onnx")
    },
    "onnx": {
        "summary": "A network as an ONNX file (a small CIFAR-10 classifier exported without weights)",
        "value": {"space": "onnx", "arch": {BASE64_FIELD: base64.b64encode(example_model()).decode()}},
    },
}
BATCH_REQUESTS = {
    "sample": {
        "summary": "5 cells drawn with a seed, on a small network",
        "value": {"sample": {"n": 5, "seed": 0}, "config": TINY_CONFIG},
    },
    "archs": {"summary": "Listed cells", "value": {"archs": [CELL, CELL_OPS], "dataset": "cifar10"}},
    "all": {
        "summary": "The whole space (15,625 cells) on synthetic data",
        "value": {"all": True, "config": {"data": "synthetic"}},
    },
}
OBSERVATION = {
    "arch": CELL,
    "dataset": "cifar10",
    "accuracy": 93.66,
    "epochs": 200,
    "source": "nas-bench-201",
    "benchmark_index": 1,
}
OBSERVATION_REQUESTS = {
    "one": {"summary": "One observed accuracy", "value": OBSERVATION},
    "many": {
        "summary": "A list (up to the server's limit, 20,000 by default)",
        "value": [
            {
                **OBSERVATION,
                "arch": "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
                "skip_connect~2|",
                "accuracy": 85.8633,
                "benchmark_index": 0,
            },
            OBSERVATION,
        ],
    },
}

# Responses.

ARCHITECTURE = {"id": 11792, "space": "nb201", "arch": CELL, "canonical_key": CANONICAL_KEY, "benchmark_index": 1}
CONFIGURATION = {
    "fingerprint": FINGERPRINT,
    "dataset": "cifar10",
    "data_source": "sha256:818cd3df9e79|cifar10|random|seed=0|n=64",
    "calibration_digest": "818cd3df9e794e212bc8547428dd6ce0f2f10d5c92ab4e4c7f5ce462de910c72",
    "legacy": False,
    "batch_size": 64,
    "sampling": "random",
    "seed": 0,
    "init": "default",
    "proxy_version": "1",
    "model": {"num_classes": 10, "channels": 16, "cells_per_stage": 5},
}
CELL_SCORES = {
    "snip": _proxy_score(30.157, 1.673),
    "grasp": _proxy_score(1.2722, 4.723),
    "synflow": _proxy_score(1.0152e36, 0.040),
    "az_expressivity": _proxy_score(52.303, 0.336),
    "az_progressivity": _proxy_score(-0.30333, 0.336),
    "az_trainability": _proxy_score(-0.080443, 0.336),
    "az_complexity": _proxy_score(113.95, 0.767),
    "meco": _proxy_score(34.687, 0.058),
    "nwot": _proxy_score(828.85, 0.609),
}
SCORE_DONE = {
    "status": "done",
    "cached": True,
    "architecture": ARCHITECTURE,
    "configuration": CONFIGURATION,
    "scores": CELL_SCORES,
    "vote": {
        **BEST_VOTE,
        "rank": 12,
        "percentile": 0.5417,
        "population": 25,
        "leaderboard_url": f"/v1/leaderboard?space=nb201&dataset=cifar10&config={FINGERPRINT}&preset=best"
        "&method=log_rank&limit=100&offset=0",
        "reason": None,
    },
    "job": None,
}
SCORE_ACCEPTED = {"status": "running", "cached": False, "job": {"id": 4, "status": "running", "url": "/v1/batches/4"}}

BATCH_ACCEPTED = _batch(
    2,
    TINY_FINGERPRINT,
    status="pending",
    total=5,
    done=0,
    failed=0,
    cancelled=0,
    pending=5,
    running=0,
    rate_per_second=None,
    eta_seconds=None,
    created_at="2026-11-29T10:24:05Z",
    started_at=None,
    finished_at=None,
)
BATCH_RUNNING = _batch(
    3,
    FINGERPRINT,
    status="running",
    total=24,
    done=14,
    failed=0,
    cancelled=0,
    pending=9,
    running=1,
    rate_per_second=0.3487,
    eta_seconds=28.68,
    created_at="2026-11-29T10:24:15Z",
    started_at="2026-11-29T10:24:15Z",
    finished_at=None,
)
BATCH_CANCELLED = _batch(
    5,
    FINGERPRINT,
    status="cancelled",
    total=10,
    done=0,
    failed=0,
    cancelled=10,
    pending=0,
    running=0,
    rate_per_second=None,
    eta_seconds=None,
    created_at="2026-11-29T10:25:44Z",
    started_at=None,
    finished_at="2026-11-29T10:25:48Z",
)
SCORE_JOB_DONE = _batch(
    4,
    FINGERPRINT,
    kind="score",
    status="done",
    total=1,
    done=1,
    failed=0,
    cancelled=0,
    pending=0,
    running=0,
    rate_per_second=0.2187,
    eta_seconds=0.0,
    created_at="2026-11-29T10:25:44Z",
    started_at="2026-11-29T10:25:44Z",
    finished_at="2026-11-29T10:25:48Z",
)
BATCH_PAGE = {"items": [SCORE_JOB_DONE], "total": 4, "limit": 1, "offset": 0}

ONNX_ARCHITECTURE = {
    "id": 15627,
    "space": "onnx",
    "arch": "onnx:44aa12c5a2484acf44e8bcb182ee23d231af47ee7e6754593f36f215ab64058c",
    "canonical_key": "onnx:44aa12c5a2484acf44e8bcb182ee23d231af47ee7e6754593f36f215ab64058c",
    "benchmark_index": None,
    "digest": "44aa12c5a2484acf44e8bcb182ee23d231af47ee7e6754593f36f215ab64058c",
    "nodes": 6,
    "parameters": 322,
    "input_shape": [3, 32, 32],
    "num_classes": 10,
    "file_bytes": 593,
}
UNREADABLE_FORM = {
    "detail": "There was an error parsing the body",
    "errors": [{"field": "", "message": "There was an error parsing the body"}],
}
ARCHITECTURE_PAGE = {"items": [ARCHITECTURE], "total": 1, "limit": 100, "offset": 0}
ARCHITECTURE_DETAIL = {
    **ARCHITECTURE,
    "scores": [{"configuration": CONFIGURATION, "scores": CELL_SCORES}],
    "observations": [
        {
            "dataset": "cifar10",
            "metric": "test_accuracy",
            "accuracy": 93.66,
            "epochs": 200,
            "source": "nas-bench-201",
            "posted_by": "benchmark-import",
            "observed_at": "2026-11-29T10:25:37Z",
        },
    ],
}
OBSERVATIONS_STORED = {"received": 1, "stored": 1}
OBSERVATIONS_DELETED = {"deleted": 15625}

POPULATION = {
    "space": "nb201",
    "dataset": "cifar10",
    "metric": "test_accuracy",
    "source": "nas-bench-201",
    "sources": [{"source": "nas-bench-201", "observations": 15625}, {"source": "alice", "observations": 12}],
    "configuration": CONFIGURATION,
    "selected_by": "most_scores",
    "size": 236,
    "classes": 25,
    "scores": 2124,
    "proxies": sorted(DEFAULT_PROXIES),
    "alternatives": [{"fingerprint": TINY_FINGERPRINT, "scores": 495, "architectures": 55}],
}
LEADERBOARD = {
    "population": POPULATION,
    "vote": BEST_VOTE,
    "rank_by": "vote",
    "unit": "class",
    "total": 25,
    "limit": 2,
    "offset": 0,
    "items": [
        {
            "id": 3569,
            "arch": "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            "canonical_key": "(#+(0)@nor_conv_3x3)@nor_conv_3x3+(0)@nor_conv_1x1+(0)@nor_conv_3x3",
            "members": 7,
            "members_url": "/v1/architectures?space=nb201&canonical=%28%23%2B%280%29%40nor_conv_3x3%29%40nor_conv_3x3"
            "%2B%280%29%40nor_conv_1x1%2B%280%29%40nor_conv_3x3",
            "scores": {
                "az_complexity": 117.88,
                "az_expressivity": 58.858,
                "az_progressivity": -0.034438,
                "az_trainability": -0.060140,
                "grasp": 24.848,
                "meco": 40.455,
                "nwot": 849.73,
                "snip": 83.008,
                "synflow": 2.9983e35,
            },
            "vote": -0.6841,
            "percentile": 1.0,
            "vote_rank": 1,
            "rank": 1,
            "accuracy": 93.347,
        },
        {
            "id": 8269,
            "arch": "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            "canonical_key": "#+((0)@nor_conv_1x1)@nor_conv_3x3+((0)@nor_conv_1x1+(0)@nor_conv_3x3)@nor_conv_3x3",
            "members": 1,
            "members_url": "/v1/architectures?space=nb201&canonical=%23%2B%28%280%29%40nor_conv_1x1%29%40nor_conv_3x3"
            "%2B%28%280%29%40nor_conv_1x1%2B%280%29%40nor_conv_3x3%29%40nor_conv_3x3",
            "scores": {
                "az_complexity": 117.88,
                "az_expressivity": 59.569,
                "az_progressivity": -0.027762,
                "az_trainability": -0.31776,
                "grasp": 478.99,
                "meco": 41.214,
                "nwot": 851.23,
                "snip": 282.55,
                "synflow": 8.3874e37,
            },
            "vote": -1.4287,
            "percentile": 0.9583,
            "vote_rank": 2,
            "rank": 2,
            "accuracy": 92.253,
        },
    ],
}
CORRELATIONS = {
    "population": POPULATION,
    "vote": BEST_VOTE,
    "unit": "class",
    "observed": 24,
    "observed_cells": 235,
    "correlations": [
        {
            "name": "meco",
            "kind": "proxy",
            "higher_is_better": True,
            "n": 24,
            "reason": None,
            "spearman_rho": 0.796,
            "spearman_p": 3.26e-06,
            "spearman_ci_low": 0.521,
            "spearman_ci_high": 0.915,
            "kendall_tau": 0.613,
            "kendall_p": 2.75e-05,
            "pearson_rank_r": 0.710,
            "pearson_rank_p": 1.01e-04,
            "top_fraction": 0.1,
            "top_recall": 0.0,
            "best_accuracy_top10": 93.66,
            "best_accuracy_top100": 93.66,
            "best_accuracy": 93.66,
            "per_cell": {
                "n": 235,
                "reason": None,
                "spearman_rho": 0.591,
                "spearman_p": 1.62e-23,
                "spearman_ci_low": 0.469,
                "spearman_ci_high": 0.698,
                "kendall_tau": 0.446,
                "kendall_p": 1.54e-21,
                "pearson_rank_r": 0.537,
                "pearson_rank_p": 6.22e-19,
                "top_fraction": 0.1,
                "top_recall": 0.457,
                "best_accuracy_top10": 93.11,
                "best_accuracy_top100": 93.66,
                "best_accuracy": 93.66,
            },
        },
        {
            "name": "vote",
            "kind": "vote",
            "higher_is_better": True,
            "n": 24,
            "reason": None,
            "spearman_rho": 0.760,
            "spearman_p": 1.66e-05,
            "spearman_ci_low": 0.448,
            "spearman_ci_high": 0.919,
            "kendall_tau": 0.592,
            "kendall_p": 5.25e-05,
            "pearson_rank_r": 0.706,
            "pearson_rank_p": 1.15e-04,
            "top_fraction": 0.1,
            "top_recall": 0.0,
            "best_accuracy_top10": 93.535,
            "best_accuracy_top100": 93.66,
            "best_accuracy": 93.66,
            "per_cell": {
                "n": 235,
                "reason": None,
                "spearman_rho": 0.639,
                "spearman_p": 2.56e-28,
                "spearman_ci_low": 0.528,
                "spearman_ci_high": 0.737,
                "kendall_tau": 0.512,
                "kendall_p": 8.17e-28,
                "pearson_rank_r": 0.544,
                "pearson_rank_p": 1.78e-19,
                "top_fraction": 0.1,
                "top_recall": 0.498,
                "best_accuracy_top10": 93.52,
                "best_accuracy_top100": 93.52,
                "best_accuracy": 93.66,
            },
        },
    ],
}
EXPORT_CSV = (
    "arch,canonical_key,config_fingerprint,meco,meco_seconds,nwot,nwot_seconds,accuracy\n"
    f"{CELL},{CANONICAL_KEY},{FINGERPRINT},34.687,0.058,828.85,0.609,93.66\n"
)
EXPORT_NASLIB = {
    "cifar10": {
        "(2, 2, 0, 4, 2, 0)": {
            "meco": {"score": 34.687, "time": 0.058},
            "nwot": {"score": 828.85, "time": 0.609},
            "val_accuracy": 93.66,
            "canonical_key": CANONICAL_KEY,
            "config_fingerprint": FINGERPRINT,
        },
    },
}

DATASETS = [
    {
        "dataset": "cifar10",
        "num_classes": 10,
        "image_size": 32,
        "real_data": True,
        "images": 1000,
        "digest": "30ac5d3b8466cf14303594b68076cba3f5a41d4e608c81785ecc68a7b5067a90",
        "origin": "shipped with nasscore (cifar10_calibration_1000.npz)",
        "builtin": True,
        "add_command": None,
    },
    {
        "dataset": "cifar100",
        "num_classes": 100,
        "image_size": 32,
        "real_data": False,
        "images": None,
        "digest": None,
        "origin": None,
        "builtin": False,
        "add_command": "`nasscore data download cifar100` or `nasscore data add cifar100 PATH` (an .npz or the "
        "python-format CIFAR folder)",
    },
]
HEALTHY = {"status": "ok"}
READY = {
    "status": "ready",
    "database_url": "sqlite:////srv/nasscore/.nasscore/nasscore.db",
    "database": "ok",
    "data": {
        "cifar10": "1000 real images, sha256:30ac5d3b8466 (shipped with nasscore (cifar10_calibration_1000.npz))",
        "cifar100": "synthetic only",
        "imagenet16-120": "synthetic only",
    },
    "workers": {
        "executor": "local",
        "supervisor": "running",
        "workers": 1,
        "alive": 1,
        "ready": 1,
        "busy": 0,
        "queued": 0,
        "devices": ["cpu"],
        "pids": [13127],
        "threads_per_worker": 2,
        "restarts": 0,
    },
    "dispatcher": "ok",
    "auth": "on",
}

# Response declarations.

ERRORS: dict[int, tuple[Any, ...]] = {
    400: (
        "The body nests JSON deeper than 32 levels, or the request is well formed but this server cannot serve "
        "it: no real calibration data for the dataset",
        _error(
            "dataset",
            "this server has no real calibration data for 'cifar100'; the operator adds it with "
            "`nasscore data download cifar100` or `nasscore data add cifar100 PATH` (an .npz or the "
            "python-format CIFAR folder), or ask for config.data='synthetic'",
        ),
    ),
    401: (
        "No API key, or an unknown or revoked one, where the request needs one",
        _error("authorization", "this request needs an API key with scope 'write'"),
    ),
    403: (
        "The API key lacks the scope the request needs, or the batch belongs to another key",
        _error("authorization", "this request needs scope 'admin'; key 'alice' has 'write'"),
    ),
    404: (
        "The named batch, architecture, configuration, observation source or scored population does not exist",
        _error("id", "no batch with id 999"),
    ),
    409: (
        "The batch already finished, or an observation's source holds a value another key posted",
        _error("id", "batch 2 already finished; there is nothing to cancel"),
    ),
    413: (
        "The body, or the number of items in it, exceeds the server's limit",
        _error("sample.n", "20001 architectures exceed the batch limit of 20000"),
    ),
    415: (
        "The body is not declared as JSON",
        _error("content-type", "expected 'application/json', got 'text/plain'"),
    ),
    422: (
        "A parameter or body field is invalid; `errors` names each one",
        _error("preset", "unknown vote preset 'fast'; known presets: mission, azn, best"),
    ),
    429: (
        "The key's (or anonymous client's) quota or request rate is spent; retry after `Retry-After` seconds",
        _error("batches", "key 'alice' has 4 unfinished batches, the most allowed; retry when one finishes"),
        {"headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}},
    ),
}
READ_ERRORS = (401, 403)
WRITE_ERRORS = (401, 403, 415, 429)
LOCATION = {"Location": {"description": "The job's URL (GET it to follow progress)", "schema": {"type": "string"}}}


def json_response(description: str, example: Any, **extra: Any) -> dict[str, Any]:
    """A `responses` entry whose JSON body has `example`."""
    return {"description": description, "content": {"application/json": {"example": example}}, **extra}


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses` entries for the client errors an operation can answer, each with the ErrorResponse body."""
    return {code: {"model": ErrorResponse, **_error_response(*ERRORS[code])} for code in status_codes}


def _error_response(description: str, example: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return json_response(description, example, **(extra or {}))
