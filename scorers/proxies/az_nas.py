"""AZ-NAS: Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024.
Follows the authors' NAS-Bench-201 code (`cvlab-yonsei/AZ-NAS`, NB201/ZeroShotProxy/compute_az_nas_score.py
and NB201/tss_general.ipynb): expressivity, progressivity and trainability come from one pass over the
stem and cell outputs of a Kaiming-initialised network fed Gaussian noise; complexity is the FLOP count."""

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorers.context import ScoringContext
from scorers.registry import get_proxy, register_proxy
from scorers.torch_utils import forward_hooks, redrawn_parameters

SEED = 0
ENTROPY_EPS = 1e-8
SPECTRAL_EPS = 1e-6
PAPER = "Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search, CVPR 2024"


@register_proxy(
    name="az_expressivity",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper=PAPER,
    typical_cpu_seconds=0.114,
)
def az_expressivity(ctx: ScoringContext) -> float:
    """Σ over the stem and cell outputs of the eigen-entropy of their channel covariance (AZ-NAS s^E).

    Each map is read as B·H·W samples of C channels; its covariance spectrum, normalised to sum 1, gives
    -Σ p log(p + 1e-8): high when features spread over many directions. NaN (an all-zero map) -> -inf.
    """
    return ctx.shared("az_nas", az_nas_pass)["expressivity"]


@register_proxy(
    name="az_progressivity",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper=PAPER,
    typical_cpu_seconds=0.114,
)
def az_progressivity(ctx: ScoringContext) -> float:
    """min over consecutive stem/cell outputs of the eigen-entropy increase (AZ-NAS s^P; NaN -> -inf)."""
    return ctx.shared("az_nas", az_nas_pass)["progressivity"]


@register_proxy(
    name="az_trainability",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper=PAPER,
    typical_cpu_seconds=0.114,
)
def az_trainability(ctx: ScoringContext) -> float:
    """Mean over cells of -σ - 1/(σ + 1e-6) + 2, σ the cell's estimated Jacobian spectral norm (AZ-NAS s^T).

    σ is the top singular value of E[g_in g_outᵀ] with g_out a Rademacher vector at the cell output and g_in
    its back-propagation to the cell input (pixel-unshuffled when the cell downsamples). The term peaks at 0
    for σ = 1. A cell that passes the gradient through unchanged (an identity cell) scores -inf, so the mean
    is -inf, as in the reference; NaN -> -inf.
    """
    return ctx.shared("az_nas", az_nas_pass)["trainability"]


@register_proxy(
    name="az_complexity",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper=PAPER,
    typical_cpu_seconds=0.05,
)
def az_complexity(ctx: ScoringContext) -> float:
    """The registered `flops` proxy's value (AZ-NAS s^C: the benchmark's FLOPs, larger ranked better)."""
    return get_proxy("flops").fn(ctx)


def az_nas_pass(ctx: ScoringContext) -> dict[str, float]:
    """One training-mode forward of N(0, 1) images through the Kaiming(fan-in, ReLU)-initialised network,
    then one vector-Jacobian product per cell; values come back NaN-mapped to -inf, as the reference does."""
    generator = torch.Generator().manual_seed(SEED)
    features = stem_and_cell_outputs(ctx, generator)
    if not features:  # nothing to read: no entropy to add, no step or cell to score
        return {"expressivity": 0.0, "progressivity": -math.inf, "trainability": -math.inf}
    # Everything stays on the device until one read-back at the end: no host sync per cell on a GPU.
    entropies = torch.stack([eigen_entropy(feature) for feature in features])
    outputs_last_first = reversed(range(1, len(features)))
    spectral = [spectral_score(features[index - 1], features[index], generator) for index in outputs_last_first]
    steps = entropies[1:] - entropies[:-1]
    progressivity = steps.min() if len(steps) else entropies.new_tensor(math.nan)
    expressivity, progressivity, *per_cell = torch.stack([entropies.sum(), progressivity, *spectral]).tolist()
    values = {
        "expressivity": expressivity,
        "progressivity": progressivity,
        "trainability": math.fsum(per_cell) / len(per_cell) if per_cell else math.nan,
    }
    return {name: -math.inf if math.isnan(value) else value for name, value in values.items()}


def kaiming_normal_fan_in(weight: Tensor, generator: torch.Generator) -> Tensor:
    """The reference's init: Kaiming normal, fan-in, ReLU gain."""
    return nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=generator)


def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs AZ-NAS reads: `stem` and each of `cells` (NAS-Bench-201, DARTS-style nets);
    otherwise the model's top-level children, unpacking module lists, in order."""
    stem, cells = getattr(model, "stem", None), getattr(model, "cells", None)
    if isinstance(stem, nn.Module) and isinstance(cells, (nn.ModuleList, nn.Sequential)):
        return [stem, *cells]
    blocks: list[nn.Module] = []
    for child in model.children():
        blocks.extend(child if isinstance(child, nn.ModuleList) else [child])
    return blocks


def stem_and_cell_outputs(ctx: ScoringContext, generator: torch.Generator) -> list[Tensor]:
    """The 4-D outputs of `feature_blocks`, kept in the autograd graph of the Gaussian input.

    An output with no graph (a cell that returns zeros) is replaced by a leaf requiring grad, so the next cell's
    Jacobian is still defined and this cell's is zero, as with the reference's `x * 0` none-op.
    """
    parameters = redrawn_parameters(ctx.model, generator, kaiming_normal_fan_in)
    buffers = {name: buffer.clone() for name, buffer in ctx.named_buffers().items()}
    images = torch.randn(ctx.inputs.shape, generator=generator).to(ctx.device).requires_grad_()
    features: list[Tensor] = []

    def record(module: nn.Module, args: tuple[Any, ...], output: object) -> Tensor | None:
        if not isinstance(output, Tensor) or output.dim() != 4:
            return None
        if not output.requires_grad:
            output = output.detach().requires_grad_()
        features.append(output)
        return output

    with forward_hooks(feature_blocks(ctx.model), record):
        ctx.forward(images, parameters=parameters, buffers=buffers)
    return features


def eigen_entropy(feature: Tensor) -> Tensor:
    """Entropy (0-d, float64) of the normalised eigenvalues of the (C, C) covariance of a (B, C, H, W) map's
    channels."""
    samples = channels_last_rows(feature.detach())
    centred = samples - samples.mean(dim=0, keepdim=True)
    eigenvalues: Tensor = torch.linalg.eigvalsh(centred.T @ centred / centred.shape[0])
    probabilities = eigenvalues / eigenvalues.sum()
    return (-probabilities * torch.log(probabilities + ENTROPY_EPS)).sum()


def channels_last_rows(maps: Tensor) -> Tensor:
    """A (B, C, H, W) map as B·H·W rows of C float64 channels, converted and transposed in one copy."""
    rows = maps.permute(0, 2, 3, 1).to(torch.float64, memory_format=torch.contiguous_format)
    return rows.reshape(-1, maps.shape[1])


def spectral_score(cell_input: Tensor, cell_output: Tensor, generator: torch.Generator) -> Tensor:
    """-σ - 1/(σ + 1e-6) + 2 for one cell (0-d, float64), σ from one Rademacher vector-Jacobian product (see
    az_trainability); -inf for a cell that passes the signs through unchanged (an identity)."""
    # The same draws as integer signs (random_ picks 0 or 1 alike for every dtype), without int64 copies.
    signs = torch.randint(0, 2, cell_output.shape, generator=generator, dtype=cell_output.dtype).mul_(2).sub_(1)
    grad_out = signs.to(cell_output.device)
    (grad_in,) = torch.autograd.grad(cell_output, cell_input, grad_out, retain_graph=True, allow_unused=True)
    if grad_in is None:
        grad_in = torch.zeros_like(cell_input)
    identity = (grad_in == grad_out).all() if grad_in.shape == grad_out.shape else None
    if grad_in.shape[2:] != grad_out.shape[2:]:
        grad_in = F.pixel_unshuffle(grad_in, grad_in.shape[2] // grad_out.shape[2])
    rows_in, rows_out = channels_last_rows(grad_in), channels_last_rows(grad_out)
    positions = rows_out.shape[0]
    sigma = torch.linalg.svdvals(rows_in.T @ rows_out / positions).max()
    score = -sigma - 1.0 / (sigma + SPECTRAL_EPS) + 2.0
    return score if identity is None else torch.where(identity, -math.inf, score)
