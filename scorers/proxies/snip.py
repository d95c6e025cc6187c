"""SNIP: Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019; used as a NAS proxy (summed over weights) by Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021."""

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers


@register_proxy(
    name="snip",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True,
    paper="Lee et al., SNIP: Single-shot Network Pruning based on Connection Sensitivity, ICLR 2019",
    typical_cpu_seconds=0.065,
)
def snip(ctx: ScoringContext) -> float:
    """Σ |θ ⊙ ∂L/∂θ| over Conv2d/Linear weights, BatchNorm in training mode.

    Equals the reference's |∂L/∂mask| at mask = 1; with `split` > 1 the chunk gradients are summed.
    """
    per_layer = [
        (weight * grad).abs() for weight, grad in zip(ctx.weights, ctx.gradients(), strict=False) if grad is not None
    ]
    return sum_over_layers(per_layer)
