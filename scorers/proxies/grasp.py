"""GraSP: Wang, Zhang & Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow",
ICLR 2020; summed over weights as a NAS proxy by Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021 (whose sign convention, −θ ⊙ Hg, we keep)."""

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers


@register_proxy(
    name="grasp",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True,
    paper="Wang et al., Picking Winning Tickets Before Training by Preserving Gradient Flow, ICLR 2020",
    needs_second_order=True,
    typical_cpu_seconds=0.537,
)
def grasp(ctx: ScoringContext) -> float:
    """Σ −θ ⊙ (H g) over Conv2d/Linear weights, g = ∂L/∂θ held constant, BatchNorm in training mode.

    With `split` > 1, g is the sum of all chunks' gradients (the reference keeps only the last chunk's,
    an accident of resetting its accumulator inside the chunk loop) and Hg is summed over the chunks.
    """
    per_layer = [
        -weight * hg for weight, hg in zip(ctx.weights, ctx.hessian_gradient(), strict=False) if hg is not None
    ]
    return sum_over_layers(per_layer)
