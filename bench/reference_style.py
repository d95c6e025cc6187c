"""A re-implementation of the reference procedure (Abdelfattah et al., ICLR 2021, `zero-cost-nas`):
one deep copy per measure, separate passes per measure, SNIP through weight masks, GraSP with a
gradient pass then a create-graph pass and a Hessian-vector backward, SynFlow on an abs'd float64 copy
with BatchNorm replaced by a no-op. It is the baseline `score_speed.py` times and checks numbers against;
written from the published description, with no code taken from the reference."""

from __future__ import annotations

import copy
import gc
import time
import types

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _scored_layers(net: nn.Module) -> list[nn.Module]:
    return [layer for layer in net.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]


def _logits(output: Tensor | tuple) -> Tensor:
    return output if isinstance(output, Tensor) else output[-1]


def _prunable_copy(net: nn.Module, *, batchnorm: bool) -> nn.Module:
    clone = copy.deepcopy(net)
    if not batchnorm:
        for layer in clone.modules():
            if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
                layer.forward = types.MethodType(lambda self, x: x, layer)
    return clone


def _sum_layers(per_layer: list[Tensor]) -> float:
    total = torch.zeros(())
    for tensor in per_layer:
        total = total + torch.sum(tensor).detach().cpu()
    return total.item()


def _masked_conv(self: nn.Conv2d, x: Tensor) -> Tensor:
    return F.conv2d(x, self.weight * self.weight_mask, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _masked_linear(self: nn.Linear, x: Tensor) -> Tensor:
    return F.linear(x, self.weight * self.weight_mask, self.bias)


def snip(net_orig: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    net = _prunable_copy(net_orig, batchnorm=True)
    for layer in _scored_layers(net):
        layer.weight_mask = nn.Parameter(torch.ones_like(layer.weight))
        layer.weight.requires_grad = False
        masked = _masked_conv if isinstance(layer, nn.Conv2d) else _masked_linear
        layer.forward = types.MethodType(masked, layer)
    net.zero_grad()
    F.cross_entropy(_logits(net(inputs)), targets).backward()
    return _sum_layers(
        [
            layer.weight_mask.grad.abs() if layer.weight_mask.grad is not None else torch.zeros_like(layer.weight)
            for layer in _scored_layers(net)
        ]
    )


def grasp(net_orig: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    net = _prunable_copy(net_orig, batchnorm=True)
    layers = _scored_layers(net)
    weights = [layer.weight for layer in layers]
    for weight in weights:
        weight.requires_grad_(True)
    net.zero_grad()
    first = torch.autograd.grad(F.cross_entropy(_logits(net(inputs)), targets), weights, allow_unused=True)
    second = torch.autograd.grad(
        F.cross_entropy(_logits(net(inputs)), targets), weights, create_graph=True, allow_unused=True
    )
    z = 0
    for fixed, live in zip(first, second, strict=False):
        if fixed is not None:
            z += (fixed.data * live).sum()
    z.backward()
    return _sum_layers(
        [
            -layer.weight.data * layer.weight.grad if layer.weight.grad is not None else torch.zeros_like(layer.weight)
            for layer in layers
        ]
    )


def synflow(net_orig: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    net = _prunable_copy(net_orig, batchnorm=False)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    net.zero_grad()
    net.double()
    ones = torch.ones([1, *inputs.shape[1:]], dtype=torch.float64, device=inputs.device)
    torch.sum(_logits(net(ones))).backward()
    return _sum_layers(
        [
            (layer.weight * layer.weight.grad).abs()
            if layer.weight.grad is not None
            else torch.zeros_like(layer.weight)
            for layer in _scored_layers(net)
        ]
    )


MEASURES = {"snip": snip, "grasp": grasp, "synflow": synflow}


def score_reference_style(
    net: nn.Module, inputs: Tensor, targets: Tensor, *, collect_garbage: bool = True
) -> dict[str, tuple[float, float]]:
    """Measure name -> (value, seconds), each measure run on its own deep copy like the reference, which
    also drops the copy and runs the garbage collector after every measure (`collect_garbage`)."""
    results = {}
    for name, measure in MEASURES.items():
        start = time.perf_counter()
        value = measure(net, inputs, targets)
        if collect_garbage:
            gc.collect()
        results[name] = (value, time.perf_counter() - start)
    return results
