"""nwot (NASWOT): Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training", ICML 2021
(BayesWatch/nas-without-training, `score_networks.py` hook and `scores.hooklogdet`)."""

from __future__ import annotations

from types import TracebackType

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from scorers.context import ACTIVATIONS, ScoringContext
from scorers.registry import register_proxy


def is_relu(module: nn.Module) -> bool:
    """The reference's test: the module's type name contains "ReLU". Besides ReLU, ReLU6, LeakyReLU... it
    catches NAS-Bench-201's ReLUConvBN blocks, whose input is their inner ReLU's, so those codes count twice,
    as in the published scores."""
    return "ReLU" in type(module).__name__


class ReluCodeKernel:
    """Accumulates K = Σ_relu c·cᵀ + (1−c)·(1−c)ᵀ over the binary codes c = [input > 0] of every ReLU call.

    With the batch in several chunks a call's codes are held until every chunk has passed, so K always
    compares every pair of examples. A call whose input is the very tensor the previous call read (a
    ReLUConvBN block and then its inner ReLU, see `is_relu`) has the same codes: its term is the previous
    term again, added without a second matrix product (exact: the terms are integers).
    """

    def __init__(self, ctx: ScoringContext) -> None:
        self.ctx = ctx
        size = ctx.inputs.shape[0]
        self.kernel = torch.zeros(size, size, dtype=torch.float64, device=ctx.device)
        self._pending: dict[int, list[Tensor | None]] = {}
        self._previous: tuple[Tensor, int] | None = None
        self._last_term = self.kernel
        self._call = 0
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ReluCodeKernel:
        model = self.ctx.model
        self._handles = [model.register_forward_pre_hook(self._start_forward)]
        self._handles += [m.register_forward_hook(self._record) for m in model.modules() if is_relu(m)]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._pending, self._previous = [], {}, None

    def _start_forward(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self._call, self._previous = 0, None

    def _record(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        read = inputs[0]
        repeat = self._previous is not None and self._previous[0] is read and self._previous[1] == read._version
        self._previous = (read, read._version)
        chunks = self._pending.setdefault(self._call, [])
        chunks.append(None if repeat else read.detach().flatten(1) > 0)
        self._call += 1
        if len(chunks) < self.ctx.split:
            return
        del self._pending[self._call - 1]
        if chunks[0] is not None:  # every chunk runs the same calls, so a repeat in one is a repeat in all
            self._last_term = _code_kernel(torch.cat([codes for codes in chunks if codes is not None]))
        self.kernel += self._last_term


def _code_kernel(codes: Tensor) -> Tensor:
    """c·cᵀ + (1−c)·(1−c)ᵀ = 2·c·cᵀ − s·1ᵀ − 1·sᵀ + D with s the row sums: one matrix product, whose
    integer entries (at most D < 2²⁴) are exact in float32, finished in float64."""
    ones = codes.float()
    agree = (ones @ ones.T).double()
    active = ones.sum(1).double()
    return 2 * agree - active[:, None] - active[None, :] + codes.shape[1]


@register_proxy(
    name="nwot",
    needs_data=True,
    needs_labels=False,
    higher_is_better=True,
    paper="Mellor et al., Neural Architecture Search without Training, ICML 2021",
    typical_cpu_seconds=0.064,
    taps={ACTIVATIONS: ReluCodeKernel},
)
def nwot(ctx: ScoringContext) -> float:
    """log|det K|, K the binary ReLU-code kernel of the batch (see ReluCodeKernel), training-mode BatchNorm.

    Codes are read from the input of every ReLU-named module (see `is_relu`) during the batch's training-mode
    forward with the model's weights (`ScoringContext.activations`): the forward of the loss-gradient pass
    (snip, grasp...) or of the input-Jacobian pass (jacob_cov) when one of those is requested too, else a
    no-grad forward of its own; the same activations as the reference's own forward. Like the reference's
    `slogdet`, the sign is ignored and a singular K (e.g. a network whose ReLUs never see the input) gives −inf.
    """
    ctx.activations()
    tap: ReluCodeKernel = ctx.tap(ACTIVATIONS, "nwot")
    return float(torch.linalg.slogdet(tap.kernel).logabsdet.item())
