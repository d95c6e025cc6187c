"""SynFlow: Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020; summed over weights as a NAS proxy by Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021."""

import torch
from torch import Tensor

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import sum_over_layers


def _absolute_double(tensor: Tensor) -> Tensor:
    """|t| in float64, as the reference's abs() of the state_dict followed by `net.double()`."""
    if tensor.is_floating_point():
        return tensor.detach().abs().double()
    return tensor.detach().abs()


@register_proxy(
    name="synflow",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper="Tanaka et al., Pruning neural networks without any data by iteratively conserving synaptic flow, "
    "NeurIPS 2020",
    typical_cpu_seconds=0.021,
)
def synflow(ctx: ScoringContext) -> float:
    """Σ |θ ⊙ ∂R/∂θ| with every parameter and buffer replaced by its absolute value, float64, BatchNorm
    bypassed, one all-ones input example, R = Σ output. Only the input's shape is read from the batch."""
    scored = set(ctx.weight_names)
    parameters = {
        name: _absolute_double(param).requires_grad_(name in scored and param.is_floating_point())
        for name, param in ctx.named_parameters().items()
    }
    buffers = {name: _absolute_double(buffer) for name, buffer in ctx.named_buffers().items()}
    ones = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64, device=ctx.device)
    output = ctx.forward(ones, parameters=parameters, buffers=buffers, bypass_batchnorm=True)
    weights = [parameters[name] for name in ctx.weight_names]
    grads = torch.autograd.grad(output.sum(), weights, allow_unused=True)
    return sum_over_layers(
        [(weight.detach() * grad).abs() for weight, grad in zip(weights, grads, strict=False) if grad is not None]
    )
