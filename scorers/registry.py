"""Proxy registry: each zero-cost proxy registers itself with its metadata, so adding a proxy is one new
module under `scorers/proxies/` and every consumer (CLI, service, reports) sees it without edits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scorers.context import ScoringContext

ProxyFn = Callable[["ScoringContext"], float]
TapFactory = Callable[["ScoringContext"], AbstractContextManager[Any]]


@dataclass(frozen=True)
class ProxyInfo:
    """A registered proxy and what it needs, so callers can plan data loading and ranking direction."""

    name: str
    fn: ProxyFn
    needs_data: bool
    needs_labels: bool
    higher_is_better: bool
    paper: str
    needs_second_order: bool = False
    summary: str = ""
    typical_cpu_seconds: float | None = None  # measured; see register_proxy
    taps: Mapping[str, TapFactory] = field(default_factory=dict, compare=False)  # see register_proxy


class UnknownProxyError(KeyError):
    """A proxy name that is not registered; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_REGISTRY: dict[str, ProxyInfo] = {}


def register_proxy(
    *,
    name: str,
    needs_data: bool,
    needs_labels: bool,
    higher_is_better: bool,
    paper: str,
    needs_second_order: bool = False,
    typical_cpu_seconds: float | None = None,
    taps: Mapping[str, TapFactory] | None = None,
) -> Callable[[ProxyFn], ProxyFn]:
    """Register `fn(ctx) -> float` under `name`.

    `needs_second_order` tells the shared pass to keep the gradient graph so a Hessian product can reuse
    the same forward/backward instead of recomputing it.

    `typical_cpu_seconds` tells users what a proxy costs before they choose it: CPU seconds per cell,
    measured with bench/correlation.py, NB201 CIFAR-10, batch 64, 1 CPU thread (shared passes split equally
    between the proxies using them; docs/correlation_nb201_cifar10_n1000_seed1.md, a run on a quiet machine).
    None when not measured.

    `taps` lets the proxy observe a shared pass ("loss_gradients", "input_jacobian", or "activations": whichever
    pass runs the batch forward first, see `ScoringContext.activations`) through module hooks
    instead of running a pass of its own. A context built for the requested proxies calls each of their
    `factory(ctx)` up front, so a pass carries the hooks of every requested proxy whichever proxy triggers
    it first; the context manager it makes is entered around the whole pass (all chunks), and the proxy
    reads it back with `ctx.tap(pass_key, name)`.
    """

    def decorator(fn: ProxyFn) -> ProxyFn:
        if name in _REGISTRY:
            raise ValueError(f"proxy {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[name] = ProxyInfo(
            name=name,
            fn=fn,
            needs_data=needs_data,
            needs_labels=needs_labels,
            higher_is_better=higher_is_better,
            paper=paper,
            needs_second_order=needs_second_order,
            summary=summary,
            typical_cpu_seconds=typical_cpu_seconds,
            taps=dict(taps or {}),
        )
        return fn

    return decorator


def get_proxy(name: str) -> ProxyInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownProxyError(f"unknown proxy {name!r}; known proxies: {known}") from None


def list_proxies() -> list[ProxyInfo]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
