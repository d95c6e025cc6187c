"""fisher: channel saliency of Fisher pruning (Theis et al., "Faster gaze prediction with dense networks and
Fisher pruning", 2018; Turner et al., "BlockSwap", ICLR 2020), summed over the network as a NAS proxy by
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021 (zero-cost-nas `measures/fisher.py`)."""

from __future__ import annotations

import math
from types import TracebackType

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers

LOSS_PASS = "loss_gradients"


class ChannelSaliency:
    """Hooks every Conv2d/Linear output z during the shared loss pass and accumulates, per layer and output
    channel k, ½·mean_n(Σ_spatial z·∂L/∂z)² over every call and chunk, as the reference's backward hook."""

    def __init__(self, ctx: ScoringContext) -> None:
        self.layers = [m for m in ctx.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.saliency: dict[nn.Module, Tensor] = {}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ChannelSaliency:
        self._handles = [layer.register_forward_hook(self._watch_output) for layer in self.layers]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _watch_output(self, layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if output.requires_grad:
            activation = output.detach()
            hook = output.register_hook(lambda grad: self._add(layer, activation, grad.detach()))  # type: ignore[no-untyped-call]  # torch leaves Tensor.register_hook unannotated
            self._handles.append(hook)

    def _add(self, layer: nn.Module, activation: Tensor, grad: Tensor) -> None:
        per_example = (activation * grad).flatten(2).sum(2) if activation.dim() > 2 else activation * grad
        value = per_example.pow(2).mean(0).mul(0.5)
        previous = self.saliency.get(layer)
        self.saliency[layer] = value if previous is None else previous + value


@register_proxy(
    name="fisher",
    needs_data=True,
    needs_labels=True,
    higher_is_better=True,
    paper="Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (Fisher pruning: Theis et al. "
    "2018; Turner et al., BlockSwap, ICLR 2020)",
    typical_cpu_seconds=0.065,
    taps={LOSS_PASS: ChannelSaliency},
)
def fisher(ctx: ScoringContext) -> float:
    """Σ over Conv2d/Linear layers and output channels of Δ_k · fan-in, Δ_k = ½·mean_n(Σ_spatial z·∂L/∂z)².

    z is the layer's output before BatchNorm (training mode), L the cross-entropy. The reference broadcasts
    each channel's Δ_k over that channel's weights before summing, so a channel counts fan-in =
    prod(weight.shape[1:]) times; we keep that weighting. Observed on the shared loss pass (no pass of its own).
    """
    ctx.gradients()
    tap: ChannelSaliency = ctx.tap(LOSS_PASS, "fisher")
    per_layer = [
        tap.saliency[layer].abs() * math.prod(layer.weight.shape[1:]) for layer in tap.layers if layer in tap.saliency
    ]
    return sum_over_layers(per_layer)
