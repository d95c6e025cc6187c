"""Scoring one architecture of a search space: the step the CLI and every worker share, so a seed means
the same initial weights wherever an architecture is scored."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from scorers import ProxyResult, score_model_detailed
from search_spaces import SPACES

# Weight initialisation schemes a model can be built with: PyTorch's layer defaults, drawn from the seed.
INIT_SCHEMES = ("default",)


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
) -> dict[str, ProxyResult]:
    """Build `arch` with weights drawn from `seed` by the `init` scheme on `device` and score it on the given
    batch. An unknown scheme raises instead of falling back to the default: the scheme is part of a
    configuration's fingerprint, so scores stored under it must have been computed with it."""
    if init not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {init!r}; models are built with: {', '.join(INIT_SCHEMES)}")
    torch.manual_seed(seed)
    model = SPACES[space].build_model(arch, **(model_params or {})).to(device)
    return score_model_detailed(model, inputs.to(device), targets.to(device), proxies)
