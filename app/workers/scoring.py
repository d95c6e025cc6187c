"""Scoring one architecture of a search space: the step the CLI and every worker share, so a seed means
the same initial weights wherever an architecture is scored."""

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scorers import ProxyResult, score_model_detailed
from search_spaces import DEFAULT_SPACE, get_space

# Weight initialisation schemes a model can be built with: PyTorch's layer defaults, drawn from the seed.
INIT_SCHEMES = ("default",)
# Layer initialisers draw from torch's global generator: threads of one worker seed and build in turn, so a
# seed gives the same weights however many cells the worker scores at once.
_GLOBAL_GENERATOR = threading.Lock()


def score_architecture(
    space: str,
    arch: str,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    proxies: Sequence[str],
    *,
    seed: int,
    device: torch.device,
    model_params: Mapping[str, Any] | None = None,
    init: str = "default",
    architecture_data: bytes | None = None,
) -> dict[str, ProxyResult]:
    """Build `arch` of the search space `space` with weights drawn from `seed` by the `init` scheme on
    `device` and score it on the given batch. `model_params` are the configuration's (the dataset's
    `num_classes` and the space's options; any space but NB201 also names itself under "space"). An unknown
    scheme, or a configuration of another space, raises instead of falling back to a default: both are part
    of a configuration's fingerprint, so scores stored under it must have been computed with them.

    `architecture_data` is the file an `onnx` architecture is built from: the space reads it first (and keeps
    its structure in this process), and it must be the file of `arch`."""
    if init not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {init!r}; models are built with: {', '.join(INIT_SCHEMES)}")
    params = dict(model_params or {})
    configured = params.pop("space", DEFAULT_SPACE)
    if configured != space:
        raise ValueError(f"a configuration of {configured} networks cannot score a {space} architecture")
    searched = get_space(space)
    if architecture_data is not None and (read := searched.parse(architecture_data)) != arch:
        raise ValueError(f"the file that came with {arch} is the file of {read}")
    with _GLOBAL_GENERATOR:
        torch.manual_seed(seed)
        model = searched.build_model(arch, **params)
    return score_model_detailed(model.to(device), inputs.to(device), targets.to(device), proxies)
