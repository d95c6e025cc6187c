"""flops: multiply-accumulates per example, counted as NAS-Bench-201 counts them (Dong & Yang,
"NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search", ICLR 2020; AutoDL
`get_model_infos`), a baseline in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021."""

import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from scorers.context import ScoringContext
from scorers.registry import register_proxy

aten = torch.ops.aten
Shape = Sequence[int]


def _matmul_macs(
    a_shape: Shape, b_shape: Shape, *args: object, out_shape: Shape | None = None, **kwargs: object
) -> int:
    return math.prod(a_shape) * b_shape[-1]


def _linear_macs(
    bias_shape: Shape, a_shape: Shape, b_shape: Shape, *args: object, out_shape: Shape, **kwargs: object
) -> int:
    """The product's MACs (in × out per row) plus one addition per output for the bias."""
    return _matmul_macs(a_shape, b_shape) + math.prod(out_shape)


def _conv_macs(
    x_shape: Shape,
    w_shape: Shape,
    bias_shape: Shape | None,
    stride: object,
    padding: object,
    dilation: object,
    transposed: bool,
    *args: object,
    out_shape: Shape,
    **kwargs: object,
) -> int:
    """k_h·k_w·C_in/groups per output element (the weight's shape after C_out), plus the bias additions;
    a transposed convolution spends its weight's shape after C_in per input element instead."""
    outputs = math.prod(out_shape)
    macs = math.prod(x_shape if transposed else out_shape) * math.prod(w_shape[1:])
    return macs + (outputs if bias_shape is not None else 0)


# FlopCounterMode counts 2·MAC and ignores biases; the benchmark counts MACs and bias additions of
# convolutions and linear layers only (no pooling, BatchNorm, activations or residual additions).
BENCHMARK_CONVENTION = {
    aten.mm: _matmul_macs,
    aten.bmm: _matmul_macs,
    aten.addmm: _linear_macs,
    aten.baddbmm: _linear_macs,
    aten.convolution: _conv_macs,
    aten._convolution: _conv_macs,
}


@register_proxy(
    name="flops",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper="Dong & Yang, NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search, ICLR 2020",
    typical_cpu_seconds=0.029,
)
def flops(ctx: ScoringContext) -> float:
    """Millions of multiply-accumulates for one example, as NAS-Bench-201's FLOPs column.

    `torch.utils.flop_counter.FlopCounterMode` with the benchmark's convention (see BENCHMARK_CONVENTION):
    convolutions and linear layers count k·C_in/groups per output element plus one per output when they
    have a bias. Only the example shape is read; BatchNorm is bypassed so one example suffices.

    Only executed operations count. The benchmark's network evaluates every edge of a cell, whereas
    `search_spaces.nb201` skips dead edges, so for the 4,250 cells with a dead convolution this is below the
    benchmark's column (by up to 106 MFLOPs); both ends of its range (7.78305 and 220.11969) match exactly.
    """
    parameters, buffers, _ = ctx.data_state()
    example = torch.zeros((1, *ctx.inputs.shape[1:]), dtype=ctx.inputs.dtype, device=ctx.device)
    counter = FlopCounterMode(display=False, custom_mapping=BENCHMARK_CONVENTION)
    with torch.no_grad(), counter:
        ctx.forward(example, parameters=parameters, buffers=buffers, bypass_batchnorm=True)
    return counter.get_total_flops() / 1e6
