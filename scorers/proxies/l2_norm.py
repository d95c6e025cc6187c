"""l2_norm: the weight-norm baseline of the zero-cost-nas code (Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021) as packaged by NASLib (Krishnakumar et al., "NAS-Bench-Suite-Zero", NeurIPS
2022 Datasets and Benchmarks), `measures/l2_norm.py`."""

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers


@register_proxy(
    name="l2_norm",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (l2_norm baseline, "
    "as in Krishnakumar et al., NAS-Bench-Suite-Zero, NeurIPS 2022)",
)
def l2_norm(ctx: ScoringContext) -> float:
    """Σ over Conv2d/Linear layers of ‖W‖₂ at initialisation; biases and BatchNorm are not counted.

    It reads only the weights, so under the default initialisation it mostly reflects how many and how wide
    the layers are. Every Conv2d/Linear module counts, executed or not (the module list the benchmark builds).
    """
    return sum_over_layers([weight.norm() for weight in ctx.weights])
