"""params: the trainable-parameter count, counted as NAS-Bench-201 counts it (Dong & Yang, "NAS-Bench-201:
Extending the Scope of Reproducible Neural Architecture Search", ICLR 2020; AutoDL `count_parameters`),
a baseline in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021."""

from scorers.context import ScoringContext
from scorers.registry import register_proxy


@register_proxy(
    name="params",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper="Dong & Yang, NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search, ICLR 2020",
)
def params(ctx: ScoringContext) -> float:
    """Number of trainable parameters (every weight, bias and BatchNorm affine term; a shared tensor once).

    A plain count, not the benchmark's unit: NAS-Bench-201 stores it in millions, so its CIFAR-10 range
    0.073306–1.531546 is 73,306–1,531,546 here.
    """
    return float(sum(param.numel() for param in ctx.named_parameters().values() if param.requires_grad))
