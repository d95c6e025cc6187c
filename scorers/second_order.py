"""Faster layers for the scoring passes on CPU: an exact 3×3 average pool, and a cheaper double backward
for Conv2d and training-mode BatchNorm2d.

A Hessian-vector product backpropagates through the backward pass, and on CPU PyTorch's generic
double-backward formulas dominate its cost: Conv2d's computes its weight term as a convolution with
batch and channels swapped, and BatchNorm's evaluates a dozen full-size products. Here each layer's gradient
is a custom autograd function whose own backward is written out:
- Conv2d: the same four products, through `F.conv2d` and one `convolution_backward` call (dedicated
  input- and weight-gradient kernels).
- BatchNorm2d: the input gradient's derivative written as one per-channel affine combination of the
  centred input, the output gradient and the cotangent (five per-channel sums, three of them from
  `native_batch_norm_backward`), instead of PyTorch's term-by-term expressions; the same derivative up to
  float rounding, which the float64 tests pin to 1e-9.
First-order gradients use the very same kernels as plain autograd, so first-order values are unchanged to
the bit.

The average pool: NAS-Bench-201's `avg_pool_3x3` (stride 1, padding 1, padding not counted) through ATen's
CPU kernel walks each window element by element and is several times slower than the convolutions around it.
`_box_sum` adds the nine shifted copies of the whole tensor in the kernel's own order (window rows, then
columns) and divides by the same window sizes, so forward and backward are bit-identical to ATen's
(tests/scorers/test_second_order.py checks it), at a fraction of the cost.

`fast_layers(model, second_order=...)` swaps these in, for the duration of a block, on the layers they cover
exactly: the average pool always; with `second_order`, also `nn.Conv2d` with integer zero padding and
`nn.BatchNorm2d` whose affine parameters need no gradient. Only on CPU tensors (on CUDA, cuDNN kernels would
make the replica's rounding differ, so PyTorch's own layers run). Everything else keeps its own forward.
Third-order derivatives are not supported through them.
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
        grad_input, grad_weight = _convolution_backward(grad_output, inputs, weight, params, need_input, need_weight)
        ctx.save_for_backward(grad_output, inputs, weight)
        ctx.params = params
        return grad_input, grad_weight

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, through_input: Tensor | None, through_weight: Tensor | None) -> Gradients:
        grad_output, inputs, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.params
        need_grad_output, need_inputs, need_weight = ctx.needs_input_grad[:3]
        d_grad_output = d_inputs = d_weight = None
        if need_grad_output:
            if through_input is not None:
                d_grad_output = F.conv2d(through_input, weight, None, stride, padding, dilation, groups)
            if through_weight is not None:
                from_weight = F.conv2d(inputs, through_weight, None, stride, padding, dilation, groups)
                d_grad_output = from_weight if d_grad_output is None else d_grad_output.add_(from_weight)
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
        stride, padding, dilation, groups = params
        ctx.save_for_backward(inputs, weight)
        ctx.params = params
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


def _box_sum(values: Tensor, divisor: Tensor | None = None) -> Tensor:
    """Σ over each 3×3 window (zero padding 1) of a N×C×H×W tensor (first divided by `divisor`, if given),
    added in ATen's order: window rows, then columns (a zero for an element outside the image changes no sum).

    Each of the nine terms is one contiguous slice of the flattened zero-padded tensor, shifted by the window
    offset: a shifted plane is a shifted range of memory once every row carries its padding. Adding whole
    ranges runs at memory speed, where adding 2-D slices walked rows of 8 or 16 elements at a time (2.4× slower
    on 8×8 maps). Positions whose window would straddle two planes are summed too and never read.
    """
    batch, channels, height, width = values.shape
    row = width + 2
    plane = (height + 2) * row
    padded = values.new_zeros(batch, channels, height + 2, row)
    interior = padded[..., 1 : height + 1, 1 : width + 1]
    if divisor is None:
        interior.copy_(values)
    else:
        torch.div(values, divisor, out=interior)
    flat = padded.view(-1)
    span = flat.numel() - 2 * row - 2  # window corners whose window ends inside the buffer
    offsets = [window_row * row + column for window_row in range(3) for column in range(3)]
    total = flat[offsets[0] : offsets[0] + span] + flat[offsets[1] : offsets[1] + span]
    for offset in offsets[2:-1]:
        total += flat[offset : offset + span]
    # The last term goes straight into a contiguous N×C×H×W result: each output at its window's corner.
    strides = (channels * plane, plane, row, 1)
    return torch.add(total.as_strided(values.shape, strides), flat.as_strided(values.shape, strides, offsets[-1]))


def _window_sizes(like: Tensor) -> Tensor:
    """H×W: how many of each position's 3×3 window lie inside the image (the divisor without padding)."""
    height, width = like.shape[-2:]
    rows = torch.full((height,), 3.0, dtype=like.dtype, device=like.device)
    columns = torch.full((width,), 3.0, dtype=like.dtype, device=like.device)
    rows[0] -= 1.0
    rows[-1] -= 1.0
    columns[0] -= 1.0
    columns[-1] -= 1.0
    return rows[:, None] * columns[None, :]


class _AvgPool3x3(torch.autograd.Function):
    """`F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)`, bit for bit, with `_AvgPool3x3Backward` as backward."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor) -> Tensor:
        return _box_sum(inputs).div_(_window_sizes(inputs))

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Gradients:
        return (_apply(_AvgPool3x3Backward, grad_output),)


class _AvgPool3x3Backward(torch.autograd.Function):
    """The pool's input gradient, ATen's bit for bit: each output's gradient divided by its window size, then
    summed over windows in the order ATen accumulates them. The pool is linear and its window symmetric, so the
    backward of this is the pool itself."""

    @staticmethod
    def forward(ctx: Any, grad_output: Tensor) -> Tensor:
        return _box_sum(grad_output, _window_sizes(grad_output))

    @staticmethod
    def backward(ctx: Any, cotangent: Tensor) -> Gradients:
        return (_apply(_AvgPool3x3, cotangent),)


def _avgpool_forward(module: nn.AvgPool2d) -> Callable[[Tensor], Tensor]:
    original: Callable[[Tensor], Tensor] = type(module).forward.__get__(module)

    def forward(inputs: Tensor) -> Tensor:
        # ATen accumulates half precision in float32; only full-precision sums follow the same order.
        if inputs.device.type != "cpu" or inputs.dim() != 4 or inputs.dtype not in (torch.float32, torch.float64):
            return original(inputs)
        output: Tensor = _apply(_AvgPool3x3, inputs)
        return output

    return forward


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


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _is_avg_pool_3x3(module: nn.Module) -> bool:
    """NAS-Bench-201's `avg_pool_3x3`: 3×3 window, stride 1, padding 1, padding not counted."""
    if type(module) is not nn.AvgPool2d:
        return False
    geometry = (_pair(module.kernel_size), _pair(module.stride), _pair(module.padding))
    plain = not module.ceil_mode and not module.count_include_pad and module.divisor_override is None
    return geometry == ((3, 3), (1, 1), (1, 1)) and plain


def _covered(module: nn.Module, second_order: bool) -> bool:
    if "forward" in module.__dict__:
        return False
    if _is_avg_pool_3x3(module):
        return True
    if not second_order:
        return False
    if type(module) is nn.Conv2d:
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return type(module) is nn.BatchNorm2d


def _fast_forward(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The replacement forward of a layer `_covered` admits: an average pool, an nn.Conv2d or an nn.BatchNorm2d."""
    if isinstance(module, nn.AvgPool2d):
        return _avgpool_forward(module)
    if isinstance(module, nn.Conv2d):
        return _conv_forward(module)
    return _batchnorm_forward(cast(nn.BatchNorm2d, module))


@contextmanager
def fast_layers(model: nn.Module, *, second_order: bool) -> Iterator[None]:
    """Route covered layers through the faster versions for the block: the exact 3×3 average pool, and with
    `second_order` the Conv2d/BatchNorm2d layers with the cheaper double backward."""
    patched = [module for module in model.modules() if _covered(module, second_order)]
    try:
        for module in patched:
            module.forward = _fast_forward(module)
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)
