"""jacob_cov: Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training", arXiv
2006.04647v1 (2020), as implemented in zero-cost-nas (Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021, `measures/jacob_cov.py`)."""

import math

import torch

from scorers.context import ScoringContext
from scorers.registry import register_proxy

EIGENVALUE_OFFSET = 1e-5


@register_proxy(
    name="jacob_cov",
    needs_data=True,
    needs_labels=False,
    higher_is_better=True,
    paper="Mellor et al., Neural Architecture Search without Training, arXiv:2006.04647v1, 2020",
    typical_cpu_seconds=0.205,
)
def jacob_cov(ctx: ScoringContext) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)], k = 1e-5, λ the eigenvalues of the correlation matrix of the
    per-example input gradients J_n = ∂(Σ logits)/∂x_n (training-mode BatchNorm, so examples interact).

    Already signed so that higher is better. Computed in float64 like the reference's NumPy; a correlation
    that is not finite (an example whose gradient is constant, e.g. a network whose output ignores its input)
    gives NaN, where the reference's eigen-solver raises and it returns NaN. nwot reads its ReLU codes from
    the forward of this pass when both are requested without a loss-gradient proxy.
    """
    correlation = torch.corrcoef(ctx.input_jacobian().double())
    if not torch.isfinite(correlation).all():
        return math.nan
    shifted = torch.linalg.eigvalsh(correlation) + EIGENVALUE_OFFSET
    return float(-(torch.log(shifted) + 1.0 / shifted).sum().item())
