"""Torch helpers the proxies and the shared-pass context use on a caller's model without mutating it:
where it lives, which weights are scored, its logits, per-layer sums, and blocks that temporarily switch
training mode, bypass BatchNorm, hook modules or redraw parameters (each restored in a `finally`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


def model_device(model: nn.Module) -> torch.device:
    """Where the model's tensors live (its first parameter's, else first buffer's device; CPU if it has none)."""
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def scored_weight_names(model: nn.Module) -> list[str]:
    """Names of the Conv2d/Linear weights the proxies sum over, in `model.modules()` order.

    A weight shared by several layers appears once per layer, as in the reference implementation.
    """
    name_of = {id(param): name for name, param in model.named_parameters()}
    return [
        name_of[id(module.weight)]
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight is not None
    ]


def logits_of(output: Any) -> Tensor:
    """The logits of a model output; `(features, logits)` tuples (NAS-Bench-201 models) give the last."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[-1], Tensor):
        return output[-1]
    raise TypeError(f"model output must be a tensor or a tuple ending with the logits, got {type(output).__name__}")


def sum_over_layers(per_layer: Sequence[Tensor]) -> float:
    """Sum of per-layer sums as a Python float: the reference's aggregation."""
    if not per_layer:
        return 0.0
    return torch.stack([tensor.sum() for tensor in per_layer]).sum().item()


@contextmanager
def train_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in training mode for the block, then restore each module's own flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.train()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def _identity(inputs: Tensor) -> Tensor:
    return inputs


@contextmanager
def batchnorm_bypassed(model: nn.Module) -> Iterator[None]:
    """Make every BatchNorm layer the identity for the block (SynFlow's `bn=False`), then restore it.

    The forward is swapped on the instance rather than masked by a hook so the normalisation is never
    computed (a hook would still run it, and train-mode BatchNorm rejects a single example).
    """
    patched: list[tuple[nn.Module, Any]] = []
    try:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                patched.append((module, module.__dict__.get("forward")))
                module.forward = _identity  # type: ignore[method-assign,assignment]  # on the instance on purpose; restored below
        yield
    finally:
        for module, previous in patched:
            if previous is None:
                del module.forward
            else:
                module.forward = previous


@contextmanager
def forward_hooks(
    modules: Iterable[nn.Module], hook: Callable[[nn.Module, tuple[Any, ...], Any], Any]
) -> Iterator[None]:
    """`hook` as a forward hook on each of `modules` for the block, removed in `finally`.

    Activation-based proxies read module outputs during their own `ScoringContext.forward` this way (a hook
    that returns a value replaces the output) without leaving hooks on the caller's model.
    """
    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def redrawn_parameters(
    model: nn.Module, generator: torch.Generator, init_weight: Callable[..., Tensor]
) -> dict[str, Tensor]:
    """Fresh parameters for proxies that score a re-initialised network (Zen-NAS, SWAP, AZ-NAS).

    Each Conv2d/Linear weight is a new CPU tensor filled by `init_weight(tensor, generator=generator)` (an
    `nn.init` function) in `model.modules()` order, so the draw does not depend on the device; their biases
    are zero and BatchNorm2d/GroupNorm scales one, shifts zero, as the references' init functions set them.
    Every other parameter is a detached alias; the caller's tensors are never written.
    """
    redrawn = {id(param): param.detach() for param in model.parameters()}
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fresh = init_weight(torch.empty(module.weight.shape), generator=generator)
            redrawn[id(module.weight)] = fresh.to(module.weight.device, module.weight.dtype)
            if module.bias is not None:
                redrawn[id(module.bias)] = torch.zeros_like(module.bias.detach())
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
            redrawn[id(module.weight)] = torch.ones_like(module.weight.detach())
            redrawn[id(module.bias)] = torch.zeros_like(module.bias.detach())
    return {name: redrawn[id(param)] for name, param in model.named_parameters()}
