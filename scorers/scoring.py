"""Scoring entry points: run the requested proxies on one model and batch through one shared context.

Failure semantics: a proxy whose value is non-finite (NaN, ±inf) returns that float, with no error; a
proxy that raises gets `ProxyResult(value=nan, error="<Type>: <message>")` and the other proxies still
run. A CUDA out-of-memory error is retried, as the reference does, with the batch split into the next
divisor of its size (up to half the batch), for the proxies that hit it; the split used is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scorers.context import ACTIVATIONS, ScoringContext
from scorers.presets import DEFAULT_PROXIES
from scorers.registry import ProxyInfo, get_proxy


@dataclass(frozen=True)
class ProxyResult:
    """One proxy's value, its seconds (own time plus its share of shared passes), its error if any, and
    the number of chunks the batch was split into (above 1 only after a CUDA out-of-memory retry)."""

    value: float
    seconds: float
    error: str | None = None
    split: int = 1


def score_model(
    model: nn.Module, inputs: Tensor, targets: Tensor | None, proxies: Sequence[str] = DEFAULT_PROXIES
) -> dict[str, float]:
    """Proxy name -> value (NaN for a proxy that failed; see `score_model_detailed` for the reason)."""
    return {name: result.value for name, result in score_model_detailed(model, inputs, targets, proxies).items()}


def score_model_detailed(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None,
    proxies: Sequence[str] = DEFAULT_PROXIES,
    *,
    split: int = 1,
) -> dict[str, ProxyResult]:
    """Proxy name -> `ProxyResult`, computing all requested proxies with shared passes.

    Raises only for misuse (unknown proxy name, missing labels, bad shapes or split); failures inside a
    proxy are reported in its result.
    """
    infos = _resolve(proxies)
    _validate(inputs, targets, infos, split)
    results: dict[str, ProxyResult] = {}
    pending, current_split = infos, split
    while pending:
        outcomes, seconds = _run_round(model, inputs, targets, pending, current_split)
        next_split = _next_split(current_split, inputs.shape[0])
        retry = [info for info in pending if _is_cuda_oom(outcomes[info.name]) and next_split is not None]
        for info in pending:
            if info not in retry:
                results[info.name] = _result(outcomes[info.name], seconds[info.name], current_split)
        if retry:
            torch.cuda.empty_cache()
        pending, current_split = retry, next_split or current_split
    return {info.name: results[info.name] for info in infos}


def _run_round(
    model: nn.Module, inputs: Tensor, targets: Tensor | None, infos: list[ProxyInfo], split: int
) -> tuple[dict[str, float | BaseException], dict[str, float]]:
    """One context's outcomes; exceptions lose their tracebacks so no frame keeps tensors alive on retry.

    Proxies that watch the batch's activations run last, so they watch a pass another proxy runs anyway
    (see `ScoringContext.activations`); the order changes no value.
    """
    ctx = ScoringContext(model, inputs, targets, infos, split=split)
    watchers_last = sorted(infos, key=lambda info: ACTIVATIONS in info.taps)
    outcomes = {info.name: ctx.run_proxy(info) for info in watchers_last}
    for outcome in outcomes.values():
        if isinstance(outcome, BaseException):
            outcome.__traceback__ = None
    return outcomes, {info.name: ctx.seconds_for(info.name) for info in infos}


def _result(outcome: float | BaseException, seconds: float, split: int) -> ProxyResult:
    if isinstance(outcome, BaseException):
        return ProxyResult(value=math.nan, seconds=seconds, error=f"{type(outcome).__name__}: {outcome}", split=split)
    return ProxyResult(value=outcome, seconds=seconds, split=split)


def _resolve(proxies: Sequence[str]) -> list[ProxyInfo]:
    names = [proxies] if isinstance(proxies, str) else list(proxies)
    if not names:
        raise ValueError("no proxies requested")
    return [get_proxy(name) for name in dict.fromkeys(names)]


def _validate(inputs: Tensor, targets: Tensor | None, infos: list[ProxyInfo], split: int) -> None:
    if not isinstance(inputs, Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty batch tensor shaped N×…")
    needing_labels = [info.name for info in infos if info.needs_labels]
    if targets is None and needing_labels:
        raise ValueError(f"proxies {', '.join(needing_labels)} need targets (labels) for the batch")
    if targets is not None and targets.shape[:1] != inputs.shape[:1]:
        raise ValueError(f"targets hold {targets.shape[0]} labels for {inputs.shape[0]} inputs")
    if not 1 <= split <= inputs.shape[0]:
        raise ValueError(f"split must be between 1 and the batch size {inputs.shape[0]}, got {split}")


def _next_split(split: int, batch_size: int) -> int | None:
    """The reference's OOM schedule: the next divisor of the batch size, never beyond half the batch."""
    divisors = (candidate for candidate in range(split + 1, batch_size // 2 + 1) if batch_size % candidate == 0)
    return next(divisors, None)


def _is_cuda_oom(outcome: float | BaseException) -> bool:
    return isinstance(outcome, torch.cuda.OutOfMemoryError) or (
        isinstance(outcome, RuntimeError) and "CUDA out of memory" in str(outcome)
    )
