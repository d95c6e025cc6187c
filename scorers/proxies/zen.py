"""Zen-NAS: Lin, Wang, Sun, Chen, Sun, Qian, Li & Jin, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
Recognition", ICCV 2021. Follows the authors' `idstcv/ZenNAS` ZeroShotProxy/compute_zen_score.py as ported to
NAS-Bench-201 by AZ-NAS (`cvlab-yonsei/AZ-NAS`, NB201/ZeroShotProxy/compute_zen_score.py), with repeat = 1 as
both use it during search."""

import torch
from torch import Tensor, nn

from scorers.context import ScoringContext
from scorers.registry import register_proxy
from scorers.torch_utils import forward_hooks, redrawn_parameters

MIXUP_GAMMA = 1e-2
SEED = 0
GLOBAL_POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@register_proxy(
    name="zen",
    needs_data=False,
    needs_labels=False,
    higher_is_better=True,
    paper="Lin et al., Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition, ICCV 2021",
    typical_cpu_seconds=0.223,
)
def zen(ctx: ScoringContext) -> float:
    """log E_b Σ|f(x) − f(x + γε)| + Σ_BN log √mean(running_var), f = the features entering global pooling.

    As the reference: Conv/Linear weights N(0, 1), biases 0, BatchNorm scale 1 shift 0; x and ε are N(0, 1)
    images of the batch's shape (the data itself is not read), γ = 0.01; two training-mode forwards without
    gradients starting from fresh running statistics (mean 0, var 1), whose updated running variances give
    the BatchNorm2d correction. A constant pre-pooling map (a disconnected cell) gives log 0 = -inf, as in
    the reference. Draws come from a fixed seed, so every model sees the same x and ε.

    Only executed layers count: `search_spaces.nb201` skips dead cell edges, whose BatchNorms then keep var 1
    and add 0, whereas the benchmark's network the reference ran updates and counts them.
    """
    generator = torch.Generator().manual_seed(SEED)
    parameters = redrawn_parameters(ctx.model, generator, nn.init.normal_)
    buffers = fresh_running_statistics(ctx.model)
    images = torch.randn(ctx.inputs.shape, generator=generator).to(ctx.device)
    noise = torch.randn(ctx.inputs.shape, generator=generator).to(ctx.device)
    with torch.no_grad():
        clean = pre_pooling_features(ctx, images, parameters, buffers)
        mixed = pre_pooling_features(ctx, images + MIXUP_GAMMA * noise, parameters, buffers)
        expansion = (clean - mixed).abs().flatten(1).sum(dim=1).mean()
        return torch.log(expansion).item() + log_batchnorm_scale(ctx.model, buffers)


def fresh_running_statistics(model: nn.Module) -> dict[str, Tensor]:
    """Buffer clones with every tracked BatchNorm reset to mean 0, var 1, as in a freshly built network."""
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            dot = f"{prefix}." if prefix else ""
            buffers[f"{dot}running_mean"].zero_()
            buffers[f"{dot}running_var"].fill_(1.0)
            buffers[f"{dot}num_batches_tracked"].zero_()
    return buffers


def pre_pooling_features(
    ctx: ScoringContext, images: Tensor, parameters: dict[str, Tensor], buffers: dict[str, Tensor]
) -> Tensor:
    """The input of the last global-pooling layer: the reference's `forward_pre_GAP` (NB201: after lastact)."""
    pools = [module for module in ctx.model.modules() if isinstance(module, GLOBAL_POOLING)]
    if not pools:
        raise ValueError("zen needs a global pooling layer (nn.AdaptiveAvgPool2d) to locate the pre-GAP features")
    captured: list[Tensor] = []
    with forward_hooks(pools[-1:], lambda module, args, output: captured.append(args[0])):
        ctx.forward(images, parameters=parameters, buffers=buffers)
    return captured[-1]


def log_batchnorm_scale(model: nn.Module, buffers: dict[str, Tensor]) -> float:
    """Σ over BatchNorm2d layers of log √mean(running_var): Zen-NAS's correction for BN's rescaling."""
    return sum(
        torch.log(torch.sqrt(buffers[f"{prefix}.running_var" if prefix else "running_var"].mean())).item()
        for prefix, module in model.named_modules()
        if isinstance(module, nn.BatchNorm2d) and module.track_running_stats
    )
