"""grad_norm: Abdelfattah, Mehrotra, Dudziak & Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021
(SamsungLabs/zero-cost-nas, `measures/grad_norm.py`)."""

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers


@register_proxy(
    name="grad_norm",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True,
    paper="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021",
    typical_cpu_seconds=0.065,
)
def grad_norm(ctx: ScoringContext) -> float:
    """Σ over Conv2d/Linear layers of ‖∂L/∂W‖₂ (cross-entropy, BatchNorm in training mode).

    A sum of per-layer Frobenius norms, not the norm of the whole gradient, as the reference sums its
    per-layer array; layers the loss does not reach add nothing. Shares the loss gradients with SNIP/GraSP.
    """
    return sum_over_layers([grad.norm() for grad in ctx.gradients() if grad is not None])
