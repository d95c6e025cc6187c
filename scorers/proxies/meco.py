"""MeCo: Jiang, Wang & Bie, "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue
of Correlation", NeurIPS 2023. Follows the authors' `HamsterMimi/MeCo` (correlation/NAS_Bench_201.py, measure
'meco'): one image, forward hooks on every module, minimum eigenvalue of each channel-correlation matrix."""

import math
from typing import Any

import torch
from torch import Tensor, nn

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import forward_hooks


@register_proxy(
    name="meco",
    needs_data=True,
    needs_labels=False,
    higher_is_better=True,
    paper="Jiang et al., MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of "
    "Correlation, NeurIPS 2023",
    typical_cpu_seconds=0.039,
)
def meco(ctx: ScoringContext) -> float:
    """Σ over every module's output of λ_min(Pearson correlation of its channels), on the batch's first image.

    As the reference: one training-mode forward of a single example with the model's own weights; a hook on
    every module (containers and the model itself included, so a map returned by nested modules counts once
    per module) takes the example's (C, H·W) map and the correlation between its channels across positions,
    a zero-variance channel's undefined row and column set to 0. Outputs with fewer than 2 channels or
    positions contribute 0 (the reference yields 0 or fails on them); non-finite terms are dropped.
    Modules that do not run (dead edges that `search_spaces.nb201` skips) add nothing.
    """
    parameters = {name: param.detach() for name, param in ctx.named_parameters().items()}
    buffers = {name: buffer.clone() for name, buffer in ctx.named_buffers().items()}
    eigenvalues: list[Tensor] = []  # 0-d tensors, read back at once: no host sync per module on a GPU

    def record(module: nn.Module, args: tuple[Any, ...], output: object) -> None:
        first = output[0] if isinstance(output, (tuple, list)) and output else output
        if isinstance(first, Tensor) and first.is_floating_point() and first.dim() >= 3:
            eigenvalues.append(min_correlation_eigenvalue(first[0].reshape(first.shape[1], -1)))

    with torch.no_grad(), forward_hooks(list(ctx.model.modules()), record):
        ctx.forward(ctx.inputs[:1], parameters=parameters, buffers=buffers)
    values = torch.stack(eigenvalues).tolist() if eigenvalues else []
    return math.fsum(value for value in values if math.isfinite(value))


def min_correlation_eigenvalue(rows: Tensor) -> Tensor:
    """λ_min of the Pearson correlation between the rows of a (C, S) map, in float64 (a 0-d tensor).

    A constant row has no correlation; it gets a zero row and column, as the reference's NaN -> 0.
    """
    if rows.shape[0] < 2 or rows.shape[1] < 2:
        return torch.zeros((), dtype=torch.float64, device=rows.device)
    centred = rows.double() - rows.double().mean(dim=1, keepdim=True)
    norms = centred.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, centred / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    correlation = (unit @ unit.T).clamp(-1.0, 1.0)
    eigenvalues: Tensor = torch.linalg.eigvalsh(correlation)
    return eigenvalues[0]
