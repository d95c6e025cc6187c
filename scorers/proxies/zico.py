"""zico: Li, Yang, Bhardwaj & Marculescu, "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients", ICLR 2023 (SLDGroup/ZiCo, `ZeroShotProxy/compute_zico.py`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from scorers.context import Gradients, ScoringContext
from scorers.registry import register_proxy

HALVES = 2


@register_proxy(
    name="zico",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True,
    paper="Li et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients, ICLR 2023",
    typical_cpu_seconds=0.291,
)
def zico(ctx: ScoringContext) -> float:
    """Σ over Conv2d/Linear layers of log Σ_θ mean_b|g_θ,b| / std_b(g_θ,b), over the two halves b of the batch.

    ZiCo needs the gradients of at least two mini-batches; like common re-implementations (AZ-NAS's NAS-Bench-201
    port) we split the one calibration batch into two halves and take each half's own gradient (cross-entropy,
    training-mode BatchNorm). The authors' loop never zeroes gradients between batches, so its second gradient
    is a running sum; we follow the paper's per-batch gradients, as that port does. As the reference:
    population std, weights whose std is 0 are left out, and a layer whose sum is 0 (or that the loss does not
    reach) adds nothing.
    """
    per_half = [_half_gradients(ctx, half) for half in range(HALVES)]
    total = 0.0
    for layer_grads in zip(*per_half, strict=False):
        if any(grad is None for grad in layer_grads):
            continue
        total += _layer_term(torch.stack([grad.flatten() for grad in layer_grads]).double())
    return total


def _half_gradients(ctx: ScoringContext, half: int) -> Gradients:
    """∂L/∂W of one half of the batch; when the batch must be split, summed over `ctx.split` pieces of it.

    Uses `ctx.forward` directly (not `ctx.loss`) so the value never depends on which other proxies share
    the context.
    """
    if ctx.targets is None:
        raise ValueError("zico needs labels but no targets were given")
    size = ctx.inputs.shape[0]
    if size < HALVES:
        raise ValueError(f"zico needs at least {HALVES} examples to compare two half-batch gradients, got {size}")
    parameters, buffers, leaves = ctx.data_state()
    start, end = half * size // HALVES, (half + 1) * size // HALVES
    pieces = min(ctx.split, end - start)
    total: Gradients = [None] * len(leaves)
    for piece in range(pieces):
        lo, hi = start + piece * (end - start) // pieces, start + (piece + 1) * (end - start) // pieces
        logits = ctx.forward(ctx.inputs[lo:hi], parameters=parameters, buffers=buffers)
        grads = torch.autograd.grad(F.cross_entropy(logits, ctx.targets[lo:hi]), leaves, allow_unused=True)
        total = [
            new if old is None else old if new is None else old + new for old, new in zip(total, grads, strict=False)
        ]
    return total


def _layer_term(grads: Tensor) -> float:
    """log Σ mean|g| / std over the weights whose std across batches is non-zero; 0 when that sum is 0."""
    spread = grads.std(dim=0, unbiased=False)
    varying = spread != 0
    ratio_sum = (grads.abs().mean(dim=0)[varying] / spread[varying]).sum()
    return torch.log(ratio_sum).item() if ratio_sum != 0 else 0.0
