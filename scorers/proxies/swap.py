"""SWAP: Peng, Song, Fayek, Ciesielski & Chang, "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS",
ICLR 2024. Follows the authors' `pym1024/SWAP` (src/metrics/swap.py and correlation.py, without the optional
parameter-count regulariser, whose μ and σ are tuned per search space)."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import forward_hooks, redrawn_parameters

SAMPLES = 16
REPEATS = 32
SEED = 0


@register_proxy(
    name="swap",
    needs_data=True,
    needs_labels=False,
    higher_is_better=True,
    paper="Peng et al., SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS, ICLR 2024",
    typical_cpu_seconds=1.411,
)
def swap(ctx: ScoringContext) -> float:
    """Number of distinct sample-wise ReLU activation patterns, averaged over re-initialisations.

    As the reference: the batch's first 16 images; every nn.ReLU fed a 4-D map contributes its neurons, and a
    neuron's pattern is its on/off state (sign of the ReLU output) across the images; the score counts the
    distinct patterns. Each of 32 repeats redraws Conv/Linear weights from N(0, 1) (biases 0, BatchNorm scale
    1 shift 0) and runs one training-mode forward without gradients; the mean is returned. The count is at
    most min(2^16, number of neurons). ReLUs that do not run (dead edges that `search_spaces.nb201` skips)
    add no neurons.
    """
    generator = torch.Generator().manual_seed(SEED)
    relus = [module for module in ctx.model.modules() if isinstance(module, nn.ReLU)]
    images = ctx.inputs[:SAMPLES]
    counts = [distinct_patterns(ctx, relus, images, generator) for _ in range(REPEATS)]
    return sum(counts) / len(counts)


def distinct_patterns(
    ctx: ScoringContext, relus: Sequence[nn.Module], images: Tensor, generator: torch.Generator
) -> int:
    """One repeat: redraw the weights, run the images, count distinct per-neuron on/off patterns."""
    parameters = redrawn_parameters(ctx.model, generator, nn.init.normal_)
    buffers = {name: buffer.clone() for name, buffer in ctx.named_buffers().items()}
    packed: list[Tensor] = []

    def record(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
        if args and isinstance(args[0], Tensor) and args[0].dim() == 4:
            packed.append(pack_patterns(output))

    with torch.no_grad(), forward_hooks(relus, record):
        ctx.forward(images, parameters=parameters, buffers=buffers)
    if not packed:
        return 0
    return int(torch.bincount(torch.cat(packed)).count_nonzero())


def pack_patterns(activations: Tensor) -> Tensor:
    """(samples, …) activations -> one int64 per neuron whose bit i is 1 when sample i is active.

    With at most 16 samples a pattern is a number below 2^16, so counting distinct patterns is a bincount
    instead of the reference's (equivalent, much slower) unique over the rows of a sign matrix.
    """
    active = (activations > 0).reshape(activations.shape[0], -1)
    codes = torch.zeros(active.shape[1], dtype=torch.int64, device=active.device)
    for bit, row in enumerate(active):
        codes |= row.to(torch.int64) << bit
    return codes
