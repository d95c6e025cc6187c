"""Exact, cheaper double backward for Conv2d and training-mode BatchNorm2d.

A Hessian-vector product backpropagates through the backward pass, and on CPU PyTorch's generic
double-backward formulas dominate its cost: Conv2d's computes its weight term as a convolution with
batch and channels swapped, and BatchNorm's also evaluates the affine-weight gradient even when nothing
needs it. Here each layer's gradient is a custom autograd function whose own backward is written out:
- Conv2d: the same four products, through `F.conv2d` and one `convolution_backward` call (dedicated
  input- and weight-gradient kernels); only float rounding differs from PyTorch (~1e-7 relative).
- BatchNorm2d: PyTorch's own double-backward expressions, operation for operation, so the rounding is
  identical (it matters: GraSP is ill-conditioned in some channels), minus the unneeded weight gradient
  and two per-channel sums PyTorch computes twice.
First-order gradients use the very same kernels as plain autograd.

`fast_second_order(model)` swaps these in, for the duration of a block, on the layers they cover exactly:
`nn.Conv2d` with integer zero padding and `nn.BatchNorm2d` whose affine parameters need no gradient, on
CPU tensors (on CUDA, cuDNN kernels would make the replica's rounding differ, so PyTorch's own formulas
run). Everything else keeps its own forward. Third-order derivatives are not supported through them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

ConvParams = tuple[list[int], list[int], list[int], int]
# What an autograd backward returns: one gradient (or None) per forward input.
Gradients = tuple[Tensor | None, ...]


def _apply(function: type[torch.autograd.Function], *args: Any) -> Any:
    """`function.apply(*args)`; torch leaves `Function.apply` unannotated."""
    return function.apply(*args)  # type: ignore[no-untyped-call]  # unannotated in torch


def _convolution_backward(
    grad_output: Tensor, inputs: Tensor, weight: Tensor, params: ConvParams, need_input: bool, need_weight: bool
) -> tuple[Tensor | None, Tensor | None]:
    stride, padding, dilation, groups = params
    grad_input, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_output,
        inputs,
        weight,
        None,
        stride,
        padding,
        dilation,
        False,
        [0] * len(stride),
        groups,
        [need_input, need_weight, False],
    )
    return grad_input, grad_weight


class _Conv2dGradients(torch.autograd.Function):
    """(∂L/∂x, ∂L/∂w) of a convolution as a function of (grad_output, x, w), with a hand-written backward."""

    @staticmethod
    def forward(
        ctx: Any,
        grad_output: Tensor,
        inputs: Tensor,
        weight: Tensor,
        params: ConvParams,
        need_input: bool,
        need_weight: bool,
    ) -> tuple[Tensor | None, Tensor | None]:
        ctx.save_for_backward(grad_output, inputs, weight)
        ctx.params = params
        return _convolution_backward(grad_output, inputs, weight, params, need_input, need_weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, through_input: Tensor | None, through_weight: Tensor | None) -> Gradients:
        grad_output, inputs, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.params
        need_grad_output, need_inputs, need_weight = ctx.needs_input_grad[:3]
        d_grad_output = d_inputs = d_weight = None
        if need_grad_output:
            terms = []
            if through_input is not None:
                terms.append(F.conv2d(through_input, weight, None, stride, padding, dilation, groups))
            if through_weight is not None:
                terms.append(F.conv2d(inputs, through_weight, None, stride, padding, dilation, groups))
            d_grad_output = terms[0].add_(terms[1]) if len(terms) == 2 else (terms[0] if terms else None)
        want_inputs = need_inputs and through_weight is not None
        want_weight = need_weight and through_input is not None
        if want_inputs or want_weight:
            # One kernel call gives both: its input gradient uses `through_weight` as the filter and its
            # weight gradient uses `through_input` as the input.
            # want_weight implies through_input is given, want_inputs that through_weight is.
            d_inputs, d_weight = _convolution_backward(
                grad_output,
                through_input if want_weight and through_input is not None else inputs,
                through_weight if want_inputs and through_weight is not None else weight,
                ctx.params,
                want_inputs,
                want_weight,
            )
        return d_grad_output, d_inputs, d_weight, None, None, None


class _Conv2d(torch.autograd.Function):
    """`F.conv2d` whose backward is `_Conv2dGradients`, hence cheaply differentiable twice."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, weight: Tensor, bias: Tensor | None, params: ConvParams) -> Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.params = params
        stride, padding, dilation, groups = params
        return F.conv2d(inputs, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Gradients:
        inputs, weight = ctx.saved_tensors
        need_inputs, need_weight, need_bias = ctx.needs_input_grad[:3]
        grad_inputs, grad_weight = _apply(
            _Conv2dGradients, grad_output, inputs, weight, ctx.params, need_inputs, need_weight
        )
        grad_bias = grad_output.sum((0, 2, 3)) if need_bias else None
        return grad_inputs, grad_weight, grad_bias, None


def _sum_except_channels(values: Tensor) -> Tensor:
    """Per-channel sums kept as 1×C×1×1, reducing dims in PyTorch's own order (batch, then last to 2)."""
    total = values.sum(0, keepdim=True)
    for dim in range(total.dim() - 1, 1, -1):
        total = total.sum(dim, keepdim=True)
    return total


def _per_channel(values: Tensor) -> Tensor:
    return values.view(1, -1, 1, 1)


class _BatchNormInputGradient(torch.autograd.Function):
    """∂L/∂x of training-mode BatchNorm as a function of (grad_output, x), with a hand-written backward.

    The backward evaluates PyTorch's own double-backward expressions, operation for operation (so the
    rounding, which matters in ill-conditioned channels, is the same; products are only written in place
    to save allocations), but skips the affine-weight gradient that nothing here needs and reuses
    per-channel sums it would compute twice.
    """

    @staticmethod
    def forward(
        ctx: Any,
        grad_output: Tensor,
        inputs: Tensor,
        weight: Tensor | None,
        mean: Tensor,
        invstd: Tensor,
        eps: float,
    ) -> Tensor:
        grad_input, _, _ = torch.ops.aten.native_batch_norm_backward(
            grad_output, inputs, weight, None, None, mean, invstd, True, eps, [True, False, False]
        )
        ctx.save_for_backward(grad_output, inputs, weight, mean, invstd)
        return grad_input  # type: ignore[no-any-return]  # aten ops are unannotated

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, cotangent: Tensor) -> Gradients:
        grad_output, inputs, weight, mean, invstd = ctx.saved_tensors
        need_grad_output, need_inputs = ctx.needs_input_grad[:2]
        count = inputs.numel() // inputs.shape[1]
        gamma = _per_channel(weight) if weight is not None else torch.ones((), dtype=inputs.dtype, device=inputs.device)
        centred = inputs - _per_channel(mean)
        invstd = _per_channel(invstd)
        invstd_squared, invstd_cubed = invstd.pow(2), invstd.pow(3)
        cotangent_sum = _sum_except_channels(cotangent)
        cotangent_centred_sum = _sum_except_channels(cotangent * centred)
        d_inputs = d_grad_output = None
        if need_inputs:
            grad_centred_sum = _sum_except_channels(grad_output * centred)
            grad_sum = _sum_except_channels(grad_output)
            all_sub = (
                (cotangent_sum * grad_sum)
                .div_(count)
                .sub_(_sum_except_channels(grad_output * cotangent))
                .add_((invstd_squared * grad_centred_sum * cotangent_centred_sum).mul_(3.0 / count))
            )
            term_0 = (centred * invstd_cubed).mul_(all_sub).div_(count)
            term_1 = (grad_sum.div(count) - grad_output).mul_((cotangent_centred_sum * invstd_cubed).div_(count))
            term_2 = (cotangent_sum.div(count) - cotangent).mul_((grad_centred_sum * invstd_cubed).div_(count))
            d_inputs = term_0.add_(term_1).add_(term_2).mul_(gamma)
        if need_grad_output:
            scale = (gamma * invstd).div_(count)
            correction = centred.mul(invstd_squared).mul_(cotangent_centred_sum)
            spread = (count * cotangent).sub_(cotangent_sum).sub_(correction)
            d_grad_output = spread.mul_(scale)
        return d_grad_output, d_inputs, None, None, None, None


class _BatchNorm2d(torch.autograd.Function):
    """Training-mode BatchNorm with batch statistics and constant affine parameters; backward is
    `_BatchNormInputGradient`. Running statistics are left untouched."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        output, mean, invstd = torch.native_batch_norm(inputs, weight, bias, None, None, True, 0.0, eps)
        ctx.save_for_backward(inputs, weight, mean, invstd)
        ctx.eps = eps
        return output

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Gradients:
        inputs, weight, mean, invstd = ctx.saved_tensors
        grad_inputs = _apply(_BatchNormInputGradient, grad_output, inputs, weight, mean, invstd, ctx.eps)
        return grad_inputs, None, None, None


def _conv_forward(module: nn.Conv2d) -> Callable[[Tensor], Tensor]:
    original: Callable[[Tensor], Tensor] = type(module).forward.__get__(module)
    params = (list(module.stride), list(module.padding), list(module.dilation), module.groups)

    def forward(inputs: Tensor) -> Tensor:
        if inputs.device.type != "cpu":
            return original(inputs)
        output: Tensor = _apply(_Conv2d, inputs, module.weight, module.bias, params)
        return output

    return forward


def _batchnorm_forward(module: nn.BatchNorm2d) -> Callable[[Tensor], Tensor]:
    original: Callable[[Tensor], Tensor] = type(module).forward.__get__(module)

    def forward(inputs: Tensor) -> Tensor:
        affine = [t for t in (module.weight, module.bias) if t is not None]
        eligible = module.training and inputs.dim() == 4 and inputs.device.type == "cpu"
        if not eligible or any(t.requires_grad for t in affine):
            return original(inputs)
        output: Tensor = _apply(_BatchNorm2d, inputs, module.weight, module.bias, module.eps)
        return output

    return forward


def _covered(module: nn.Module) -> bool:
    if "forward" in module.__dict__:
        return False
    if type(module) is nn.Conv2d:
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return type(module) is nn.BatchNorm2d


def _fast_forward(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The replacement forward of a layer `_covered` admits: an nn.Conv2d or else an nn.BatchNorm2d."""
    if isinstance(module, nn.Conv2d):
        return _conv_forward(module)
    return _batchnorm_forward(cast(nn.BatchNorm2d, module))


@contextmanager
def fast_second_order(model: nn.Module) -> Iterator[None]:
    """Route covered Conv2d/BatchNorm2d layers through the cheaper double backward for the block."""
    patched = [module for module in model.modules() if _covered(module)]
    try:
        for module in patched:
            module.forward = _fast_forward(module)
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)
