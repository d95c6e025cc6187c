"""The shared-pass engine behind every proxy.

A `ScoringContext` is built once per (model, batch, requested proxies). Proxies ask it for quantities
(loss gradients, the Hessian-gradient product, the batch's activations, or anything registered through
`shared`); each quantity is computed lazily on first use, cached, and timed, so proxies requested together
share passes: SNIP and GraSP share one forward and one gradient backward, GraSP's Hessian product reuses
that gradient's graph when the context was told (via `ProxyInfo.needs_second_order`) to keep it, and a
proxy that only reads the batch's activations (nwot) watches whichever of those passes runs instead of
running a forward of its own.

Time accounting: a proxy is charged its own exclusive time (time inside its function not spent
computing shared quantities) plus, for every shared quantity it used, that quantity's exclusive compute
time divided equally among all the proxies that used it. Summed over proxies this equals the wall time.

The caller's model is never mutated: forward passes go through `torch.func.functional_call` with detached
aliases of the parameters and clones of the buffers (BatchNorm running statistics are updated on the
clones), training flags and any temporary BatchNorm bypass are restored in `finally` blocks, and
gradients come from `torch.autograd.grad`, so no `.grad` is left behind.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from scorers.registry import ProxyInfo
from scorers.second_order import fast_layers
from scorers.torch_utils import batchnorm_bypassed, logits_of, model_device, scored_weight_names, train_mode

T = TypeVar("T")
Gradients = list[Tensor | None]
# The pass key of taps that watch one training-mode forward of the batch with the caller's weights (see
# `ScoringContext.activations`).
ACTIVATIONS = "activations"


class _Failure:
    """A cached exception, so a quantity that failed once fails fast for every later user."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ScoringContext:
    """Lazily computed, cached and timed quantities shared by the proxies scoring one model on one batch.

    A proxy is `fn(ctx) -> float`. Besides `inputs`, `targets`, `device`, `weight_names` and `weights`,
    it can use `gradients()`, `hessian_gradient()`, `data_state()` + `forward()` + `chunks()` for its own
    passes, and `shared(key, compute)` to publish anything other proxies may reuse (activations, ReLU
    codes, Jacobians...): the first caller computes it, later callers get the cached value, and its time
    is split among all callers. `input_jacobian()` is the input gradient of the summed logits, and
    a proxy registered with `taps` hooks modules during a shared pass (`tap` returns what it saw);
    `activations()` runs (or reuses) the pass its `ACTIVATIONS` taps watch. Proxies must treat everything
    they get as read-only.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor | None,
        proxies: Sequence[ProxyInfo],
        *,
        split: int = 1,
    ) -> None:
        if split < 1 or split > inputs.shape[0]:
            raise ValueError(f"split must be between 1 and the batch size {inputs.shape[0]}, got {split}")
        self.model = model
        self.device = model_device(model)
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device) if targets is not None else None
        self.split = split
        self.second_order = any(proxy.needs_second_order for proxy in proxies)
        self.keep_gradient_graph = split == 1 and self.second_order
        self.weight_names = scored_weight_names(model)
        self._parameters = dict(model.named_parameters())
        self._cache: dict[str, Any] = {}
        self._seconds: dict[str, float] = {}
        self._users: defaultdict[str, set[str]] = defaultdict(set)
        self._own_seconds: dict[str, float] = {}
        self._active_proxy: str | None = None
        self._nested_seconds: list[float] = []
        self._gradient_graph: tuple[Tensor | None, ...] | None = None
        self._tap_factories = {proxy.name: proxy.taps for proxy in proxies if proxy.taps}
        self._taps = self._plan_taps(proxies)
        self._activations_pass: str | None = None

    @property
    def weights(self) -> list[Tensor]:
        """The caller's Conv2d/Linear weights, detached (read-only views; never write to them)."""
        return [self._parameters[name].detach() for name in self.weight_names]

    def named_parameters(self) -> dict[str, Tensor]:
        return dict(self._parameters)

    def named_buffers(self) -> dict[str, Tensor]:
        return dict(self.model.named_buffers())

    def forward(
        self,
        inputs: Tensor,
        *,
        parameters: Mapping[str, Tensor],
        buffers: Mapping[str, Tensor],
        bypass_batchnorm: bool = False,
        twice_differentiable: bool = False,
    ) -> Tensor:
        """The model's logits in training mode, computed with the given parameter and buffer tensors.

        Layers run through `scorers.second_order.fast_layers` (same values); `twice_differentiable` adds its
        Conv2d/BatchNorm2d, whose double backward is cheaper: use it for passes that will be differentiated twice.
        """
        bypass = batchnorm_bypassed(self.model) if bypass_batchnorm else nullcontext()
        fast = fast_layers(self.model, second_order=twice_differentiable)
        with train_mode(self.model), bypass, fast:
            output = functional_call(self.model, (dict(parameters), dict(buffers)), (inputs,))
        return logits_of(output)

    def chunks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The batch in `split` contiguous chunks, as the reference slices it after a CUDA OOM."""
        if self.targets is None:
            raise ValueError("this proxy needs labels but no targets were given")
        size = self.inputs.shape[0]
        for index in range(self.split):
            start, end = index * size // self.split, (index + 1) * size // self.split
            yield self.inputs[start:end], self.targets[start:end]

    def data_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor], list[Tensor]]:
        """Parameter aliases (scored weights require grad), buffer clones, and the weight leaves in order."""
        return self.shared("data_state", ScoringContext._build_data_state)

    def loss(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy on a chunk; twice differentiable cheaply when a second-order proxy was requested."""
        parameters, buffers, _ = self.data_state()
        logits = self.forward(inputs, parameters=parameters, buffers=buffers, twice_differentiable=self.second_order)
        return F.cross_entropy(logits, targets)

    def gradients(self) -> Gradients:
        """g = ∂L/∂θ for each scored weight (None where unused), summed over the chunks, detached."""
        return self.shared("loss_gradients", ScoringContext._compute_gradients)

    def hessian_gradient(self) -> Gradients:
        """Hg for each scored weight, with g from `gradients()` held constant (None where unused)."""
        return self.shared("hessian_gradient", ScoringContext._compute_hessian_gradient)

    def activations(self) -> None:
        """Make sure the batch went through one training-mode forward with the caller's weights while the
        `ACTIVATIONS` taps watched it: the loss-gradient or input-Jacobian pass if one ran (the caller then
        shares its time), else one no-grad forward of its own. `score_model` runs proxies that watch
        activations after the others, so a pass another requested proxy needs is the one they watch.
        """
        if self._activations_pass is None:
            self.shared(ACTIVATIONS, ScoringContext._compute_activations)
        elif self._active_proxy is not None:
            self._users[self._activations_pass].add(self._active_proxy)

    def input_jacobian(self) -> Tensor:
        """∂(Σ logits)/∂x per example (N × input size), training mode, chunk by chunk, detached; zeros where
        the logits ignore the input."""
        return self.shared("input_jacobian", ScoringContext._compute_input_jacobian)

    def tap(self, pass_key: str, proxy_name: str) -> Any:
        """The tap `proxy_name` registered on `pass_key`, holding what it observed (see `register_proxy`)."""
        return self._taps[pass_key][proxy_name]

    @contextmanager
    def tapping(self, pass_key: str) -> Iterator[None]:
        """Run the block (one shared pass) with every planned tap of `pass_key` entered, and the `ACTIVATIONS`
        taps too when no earlier pass carried them. A pass that fails leaves them fresh for the next one."""
        carries = pass_key != ACTIVATIONS and self._activations_pass is None and ACTIVATIONS in self._taps
        keys = [pass_key, ACTIVATIONS] if carries else [pass_key]
        try:
            with ExitStack() as stack:
                for key in keys:
                    for tap in self._taps.get(key, {}).values():
                        stack.enter_context(tap)
                yield
        except BaseException:
            if ACTIVATIONS in keys:
                self._taps[ACTIVATIONS] = {
                    name: factories[ACTIVATIONS](self)
                    for name, factories in self._tap_factories.items()
                    if ACTIVATIONS in factories
                }
            raise
        if ACTIVATIONS in keys:
            self._activations_pass = pass_key

    def shared(self, key: str, compute: Callable[[ScoringContext], T]) -> T:
        """`compute(self)` once per context under `key`; later calls (by any proxy) reuse the value."""
        if self._active_proxy is not None:
            self._users[key].add(self._active_proxy)
        if key in self._cache:
            cached = self._cache[key]
            if isinstance(cached, _Failure):
                raise cached.error
            return cast(T, cached)
        seconds, value = self._timed(lambda: compute(self))
        self._seconds[key] = seconds
        self._cache[key] = value
        if isinstance(value, _Failure):
            raise value.error
        return value

    def run_proxy(self, proxy: ProxyInfo) -> float | BaseException:
        """The proxy's value, or the exception it raised (so one failure never stops the others)."""
        self._active_proxy = proxy.name
        try:
            seconds, value = self._timed(lambda: float(proxy.fn(self)))
        finally:
            self._active_proxy = None
        self._own_seconds[proxy.name] = seconds
        return value.error if isinstance(value, _Failure) else value

    def seconds_for(self, proxy_name: str) -> float:
        """Own time plus an equal share of each shared quantity the proxy used (see module docstring)."""
        shared = sum(
            self._seconds.get(key, 0.0) / len(users) for key, users in self._users.items() if proxy_name in users
        )
        return self._own_seconds.get(proxy_name, 0.0) + shared

    def _plan_taps(self, proxies: Sequence[ProxyInfo]) -> dict[str, dict[str, AbstractContextManager[Any]]]:
        """Every requested proxy's taps, per pass, made now so whichever proxy runs a pass first runs it
        with the hooks of all of them."""
        taps: defaultdict[str, dict[str, AbstractContextManager[Any]]] = defaultdict(dict)
        for proxy in proxies:
            for pass_key, factory in proxy.taps.items():
                taps[pass_key][proxy.name] = factory(self)
        return dict(taps)

    def _build_data_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor], list[Tensor]]:
        scored = set(self.weight_names)
        parameters = {
            name: param.detach().requires_grad_(name in scored) for name, param in self.named_parameters().items()
        }
        buffers = {name: buffer.clone() for name, buffer in self.named_buffers().items()}
        leaves = [parameters[name] for name in self.weight_names]
        return parameters, buffers, leaves

    def _compute_gradients(self) -> Gradients:
        """One pass per chunk; with a second-order proxy and no split, the graph is kept for Hg."""
        _, _, leaves = self.data_state()
        with self.tapping("loss_gradients"):
            if self.keep_gradient_graph:
                inputs, targets = next(self.chunks())
                graph = torch.autograd.grad(self.loss(inputs, targets), leaves, create_graph=True, allow_unused=True)
                self._gradient_graph = graph
                return [None if grad is None else grad.detach() for grad in graph]
            total: Gradients = [None] * len(leaves)
            for inputs, targets in self.chunks():
                grads = torch.autograd.grad(self.loss(inputs, targets), leaves, allow_unused=True)
                total = _accumulate(total, grads)
            return total

    def _compute_hessian_gradient(self) -> Gradients:
        """Backward of z = Σ g·∂L/∂θ: through the kept graph, else per chunk with the full-batch g."""
        gradient = self.gradients()
        _, _, leaves = self.data_state()
        if self._gradient_graph is not None:
            graph, self._gradient_graph = self._gradient_graph, None
            return list(torch.autograd.grad(_gradient_dot(gradient, graph), leaves, allow_unused=True))
        total: Gradients = [None] * len(leaves)
        for inputs, targets in self.chunks():
            graph = torch.autograd.grad(self.loss(inputs, targets), leaves, create_graph=True, allow_unused=True)
            total = _accumulate(total, torch.autograd.grad(_gradient_dot(gradient, graph), leaves, allow_unused=True))
        return total

    def _compute_activations(self) -> None:
        parameters, buffers, _ = self.data_state()
        size = self.inputs.shape[0]
        with torch.no_grad(), self.tapping(ACTIVATIONS):
            for index in range(self.split):
                chunk = self.inputs[index * size // self.split : (index + 1) * size // self.split]
                self.forward(chunk, parameters=parameters, buffers=buffers)

    def _compute_input_jacobian(self) -> Tensor:
        parameters, buffers, _ = self.data_state()
        size = self.inputs.shape[0]
        rows = []
        with self.tapping("input_jacobian"):
            for index in range(self.split):
                chunk = self.inputs[index * size // self.split : (index + 1) * size // self.split]
                chunk = chunk.detach().requires_grad_(True)
                logits = self.forward(chunk, parameters=parameters, buffers=buffers)
                (jacobian,) = torch.autograd.grad(logits.sum(), chunk, allow_unused=True, materialize_grads=True)
                rows.append(jacobian.flatten(1))
        return torch.cat(rows)

    def _timed(self, compute: Callable[[], T]) -> tuple[float, T | _Failure]:
        """Exclusive seconds of `compute` (nested shared computations excluded) and its value or failure."""
        self._synchronize()
        start = time.perf_counter()
        self._nested_seconds.append(0.0)
        try:
            value: T | _Failure = compute()
        except Exception as error:
            value = _Failure(error)
        self._synchronize()
        elapsed = time.perf_counter() - start
        nested = self._nested_seconds.pop()
        if self._nested_seconds:
            self._nested_seconds[-1] += elapsed
        return elapsed - nested, value

    def _synchronize(self) -> None:
        """Wait for this thread's stream only: a worker scoring several cells at once runs each on its own
        stream, and a device-wide wait would make every cell wait on the others (and charge their time)."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()


def _gradient_dot(constant: Gradients, graph: Sequence[Tensor | None]) -> Tensor:
    """z = Σ g·∂L/∂θ over layers where both exist; its gradient is the Hessian-gradient product."""
    terms = [
        (fixed * live).sum()
        for fixed, live in zip(constant, graph, strict=False)
        if fixed is not None and live is not None
    ]
    if not terms:
        raise RuntimeError("the loss does not depend on any Conv2d/Linear weight")
    return torch.stack(terms).sum()


def _accumulate(total: Gradients, grads: Sequence[Tensor | None]) -> Gradients:
    return [new if old is None else old if new is None else old + new for old, new in zip(total, grads, strict=True)]
