"""grad_norm, fisher, jacob_cov, nwot, zico, params, flops and l2_norm: hand-worked values on a tiny
network, agreement with a direct computation on a small cell, the benchmark's params and FLOPs, shared passes."""

import copy
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    ALL_CONV,
    ALL_NONE,
    CIFAR10_NPZ,
    MIXED_CELL,
    relative_error,
    small_model,
)
from torch import nn

from scorers import get_proxy, score_model, score_model_detailed
from scorers.calibration import load_calibration_batch
from search_spaces import nb201

PROXIES = ("grad_norm", "fisher", "jacob_cov", "nwot", "zico", "params", "flops", "l2_norm")


NEEDS_LABELS = {"grad_norm", "fisher", "zico"}


class TinyMLP(nn.Module):
    """x (N×3×2×2) -> Linear(12, 16) -> ReLU -> Linear(16, 3): small enough to differentiate by hand."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.hidden = nn.Linear(12, 16)
        self.relu = nn.ReLU()
        self.out = nn.Linear(16, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu(self.hidden(inputs.flatten(1))))


@pytest.fixture(scope="module")
def batch():
    """16 synthetic CIFAR-10 examples cropped to 16×16 (the network pools globally), to keep tests fast."""
    synthetic = load_calibration_batch("cifar10", "synthetic", batch_size=16, seed=0)
    return synthetic.inputs[:, :, :16, :16].contiguous(), synthetic.targets


@pytest.fixture(scope="module")
def tiny_batch():
    generator = torch.Generator().manual_seed(5)
    return torch.randn(8, 3, 2, 2, generator=generator), torch.randint(0, 3, (8,), generator=generator)


def mlp_forward_backward(model: TinyMLP, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    x = inputs.flatten(1).double()
    w1, b1 = model.hidden.weight.double().detach(), model.hidden.bias.double().detach()
    w2, b2 = model.out.weight.double().detach(), model.out.bias.double().detach()
    z1 = x @ w1.T + b1
    active = (z1 > 0).double()
    z2 = (z1 * active) @ w2.T + b2
    delta2 = (torch.softmax(z2, dim=1) - F.one_hot(targets, 3).double()) / len(x)
    delta1 = (delta2 @ w2) * active
    return {
        "x": x,
        "z1": z1,
        "active": active,
        "z2": z2,
        "delta1": delta1,
        "delta2": delta2,
        "grad_w1": delta1.T @ x,
        "grad_w2": delta2.T @ (z1 * active),
        "w1": w1,
        "w2": w2,
    }


def jacob_cov_of(jacobian: np.ndarray) -> float:
    eigenvalues = np.linalg.eig(np.corrcoef(jacobian))[0].real
    return float(-np.sum(np.log(eigenvalues + 1e-5) + 1.0 / (eigenvalues + 1e-5)))


def zico_of(per_batch_layer_grads: list[list[np.ndarray]]) -> float:
    total = 0.0
    for layer in zip(*per_batch_layer_grads, strict=False):
        stacked = np.stack([grad.ravel() for grad in layer])
        std, mean_abs = stacked.std(axis=0), np.abs(stacked).mean(axis=0)
        ratio_sum = np.sum(mean_abs[std != 0] / std[std != 0])
        total += np.log(ratio_sum) if ratio_sum != 0 else 0.0
    return total


def hand_values(model: TinyMLP, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Each definition written out for TinyMLP: the ReLU's input is z1, the Jacobian of Σ logits is
    W1ᵀ·([z1 > 0] ⊙ W2ᵀ1), fisher's layers have fan-in 12 and 16, zico compares the two half-batches."""
    m = mlp_forward_backward(model, inputs, targets)
    fisher = sum(
        0.5 * ((act * grad) ** 2).mean(0).sum().item() * fan_in
        for act, grad, fan_in in ((m["z1"], m["delta1"], 12), (m["z2"], m["delta2"], 16))
    )
    jacobian = (m["active"] * m["w2"].sum(0)) @ m["w1"]
    codes = m["active"].numpy()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    half = len(inputs) // 2
    halves = [mlp_forward_backward(model, inputs[part], targets[part]) for part in (slice(0, half), slice(half, None))]
    return {
        "grad_norm": (m["grad_w1"].norm() + m["grad_w2"].norm()).item(),
        "fisher": fisher,
        "jacob_cov": jacob_cov_of(jacobian.numpy()),
        "nwot": float(np.linalg.slogdet(kernel)[1]),
        "zico": zico_of([[h["grad_w1"].numpy(), h["grad_w2"].numpy()] for h in halves]),
        "params": 12 * 16 + 16 + 16 * 3 + 3,
        "flops": (12 * 16 + 16 + 16 * 3 + 3) / 1e6,
        "l2_norm": (m["w1"].norm() + m["w2"].norm()).item(),
    }


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def direct_grad_norm(model, inputs, targets) -> float:
    net = copy.deepcopy(model).train()
    F.cross_entropy(net(inputs), targets).backward()
    return sum(m.weight.grad.norm().item() for m in _layers(net) if m.weight.grad is not None)


def direct_fisher(model, inputs, targets, split=1) -> float:
    """Each layer's output goes through an identity whose full backward hook sees ∂L/∂z, as the reference."""
    net = copy.deepcopy(model).train()
    found: dict[nn.Module, torch.Tensor] = {}

    def attach(layer):
        identity = nn.Identity()

        def on_backward(module, grad_input, grad_output):
            act, grad = layer.saved_output, grad_output[0]
            per_example = (act * grad).sum(dim=(2, 3)) if act.dim() == 4 else act * grad
            found[layer] = found.get(layer, 0) + 0.5 * per_example.pow(2).mean(0)

        identity.register_full_backward_hook(on_backward)

        def on_forward(module, args, output):
            layer.saved_output = output.detach()
            return identity(output)

        layer.register_forward_hook(on_forward)

    for layer in _layers(net):
        attach(layer)
    size = len(inputs)
    for piece in range(split):
        lo, hi = piece * size // split, (piece + 1) * size // split
        F.cross_entropy(net(inputs[lo:hi]), targets[lo:hi]).backward()
    return sum(found[m].abs().sum().item() * math.prod(m.weight.shape[1:]) for m in _layers(net) if m in found)


def direct_jacob_cov(model, inputs, split=1) -> float:
    net = copy.deepcopy(model).train()
    x = inputs.clone().requires_grad_(True)
    size = len(inputs)
    for piece in range(split):
        lo, hi = piece * size // split, (piece + 1) * size // split
        out = net(x[lo:hi])
        out.backward(torch.ones_like(out))
    return jacob_cov_of(x.grad.reshape(size, -1).numpy())


def direct_nwot(model, inputs, split=1) -> float:
    """Codes of the input of every module whose type mentions "ReLU" (the reference's test, which also
    catches NB201's ReLUConvBN blocks), per call and chunk; K = c·cᵀ + (1−c)(1−c)ᵀ in float64 NumPy."""
    net = copy.deepcopy(model).train()
    codes: list[np.ndarray] = []
    for module in net.modules():
        if "ReLU" in str(type(module)):
            module.register_forward_hook(lambda m, args, out: codes.append((args[0] > 0).flatten(1).double().numpy()))
    size = len(inputs)
    per_chunk = []
    with torch.no_grad():
        for piece in range(split):
            codes.clear()
            net(inputs[piece * size // split : (piece + 1) * size // split])
            per_chunk.append(list(codes))
    kernel = np.zeros((size, size))
    for calls in zip(*per_chunk, strict=False):
        c = np.concatenate(calls)
        kernel += c @ c.T + (1 - c) @ (1 - c).T
    return float(np.linalg.slogdet(kernel)[1])


def direct_zico(model, inputs, targets) -> float:
    net = copy.deepcopy(model).train()
    half = len(inputs) // 2
    per_batch = []
    for lo, hi in ((0, half), (half, len(inputs))):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(inputs[lo:hi]), targets[lo:hi]).backward()
        per_batch.append([m.weight.grad.double().numpy() for m in _layers(net) if m.weight.grad is not None])
    return zico_of(per_batch)


def direct_mflops(model, example_shape) -> float:
    """NAS-Bench-201's counter: per-layer forward hooks on Conv2d/Linear, MACs plus bias additions."""
    net = copy.deepcopy(model).eval()
    total = []

    def count(module, args, out):
        per_output = math.prod(module.weight.shape[1:])
        total.append(out.numel() * per_output + (out.numel() if module.bias is not None else 0))

    for layer in _layers(net):
        layer.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros(1, *example_shape))
    return sum(total) / 1e6


def test_metadata_declares_direction_data_and_paper():
    for name in PROXIES:
        info = get_proxy(name)
        assert info.higher_is_better is True and info.paper and info.summary
        assert info.needs_labels == (name in NEEDS_LABELS)
        assert info.needs_data == (name in {"grad_norm", "fisher", "jacob_cov", "nwot", "zico"})


@pytest.mark.parametrize(
    "model_factory", [TinyMLP, functools.partial(small_model, MIXED_CELL)], ids=["tiny_mlp", "nb201_cell"]
)
def test_every_proxy_is_finite_deterministic_and_leaves_the_model_untouched(model_factory, tiny_batch, batch):
    model = model_factory()
    inputs, targets = tiny_batch if isinstance(model, TinyMLP) else batch
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    flags = [module.training for module in model.modules()]
    first = score_model_detailed(model, inputs, targets, PROXIES)
    again = score_model(model, inputs, targets, PROXIES)
    assert all(result.error is None and math.isfinite(result.value) for result in first.values()), first
    assert {name: result.value for name, result in first.items()} == again
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert [module.training for module in model.modules()] == flags
    assert all(param.grad is None and param.requires_grad for param in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_values_on_a_tiny_network_equal_hand_worked_maths(tiny_batch):
    model = TinyMLP()
    scores = score_model(model, *tiny_batch, PROXIES)
    expected = hand_values(model, *tiny_batch)
    for name in PROXIES:
        assert relative_error(scores[name], expected[name]) < 1e-5, name


def test_values_on_a_small_cell_equal_a_direct_computation(batch):
    model = small_model(MIXED_CELL, seed=1)
    inputs, targets = batch
    scores = score_model(model, inputs, targets, PROXIES)
    assert relative_error(scores["grad_norm"], direct_grad_norm(model, inputs, targets)) < 1e-5
    assert relative_error(scores["fisher"], direct_fisher(model, inputs, targets)) < 1e-4
    assert relative_error(scores["jacob_cov"], direct_jacob_cov(model, inputs)) < 1e-6
    assert relative_error(scores["nwot"], direct_nwot(model, inputs)) < 1e-9
    assert relative_error(scores["zico"], direct_zico(model, inputs, targets)) < 1e-5
    assert scores["params"] == sum(p.numel() for p in model.parameters())
    assert relative_error(scores["flops"], direct_mflops(model, inputs.shape[1:])) < 1e-12
    assert relative_error(scores["l2_norm"], sum(torch.linalg.norm(m.weight).item() for m in _layers(model))) < 1e-6


def test_chunked_batches_match_the_reference_chunking(batch):
    model = small_model(ALL_CONV, seed=2)
    inputs, targets = batch
    results = score_model_detailed(model, inputs, targets, ("fisher", "jacob_cov", "nwot"), split=2)
    assert relative_error(results["fisher"].value, direct_fisher(model, inputs, targets, split=2)) < 1e-4
    assert relative_error(results["jacob_cov"].value, direct_jacob_cov(model, inputs, split=2)) < 1e-6
    assert relative_error(results["nwot"].value, direct_nwot(model, inputs, split=2)) < 1e-9


@pytest.mark.parametrize(
    ("arch", "params", "mflops"),
    [(ALL_NONE, 73_306, 7.78305), (ALL_CONV, 1_531_546, 220.11969)],
    ids=["smallest", "largest"],
)
def test_params_and_flops_equal_the_benchmark_at_both_ends_of_its_range(arch, params, mflops):
    model = nb201.build_model(arch, num_classes=10)
    example = torch.zeros(1, 3, 32, 32)
    scores = score_model(model, example, None, ("params", "flops"))
    assert scores["params"] == params
    assert scores["flops"] == pytest.approx(mflops, abs=1e-9)
    assert round(scores["flops"], 2) == {73_306: 7.78, 1_531_546: 220.12}[params]


def test_flops_count_strided_grouped_and_biased_layers_like_the_benchmark():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=True),
        nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    mflops = score_model(model, torch.zeros(2, 4, 9, 9), None, ("flops",))["flops"]
    by_hand = (5 * 5 * 8) * (3 * 3 * 4 + 1) + (5 * 5 * 8) * (3 * 3 * 2) + (8 * 5 + 5)
    assert mflops == pytest.approx(by_hand / 1e6, abs=1e-12)


def test_a_network_that_ignores_its_input_gives_the_reference_nan_and_minus_infinity(batch):
    scores = score_model(small_model(ALL_NONE), *batch, ("jacob_cov", "nwot", "grad_norm", "zico"))
    assert math.isnan(scores["jacob_cov"])
    assert scores["nwot"] == -math.inf
    assert scores["grad_norm"] == 0.0 and scores["zico"] == 0.0


def test_a_failing_shared_pass_reports_its_error_and_removes_its_hooks(batch):
    model = small_model(MIXED_CELL)
    inputs, targets = batch
    bad_targets = targets.clone()
    bad_targets[0] = 10
    results = score_model_detailed(model, inputs, bad_targets, ("fisher", "grad_norm", "nwot"))
    for name in ("fisher", "grad_norm"):
        assert math.isnan(results[name].value) and "out of bounds" in results[name].error
    assert results["nwot"].error is None and math.isfinite(results["nwot"].value)
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_proxies_requested_together_equal_each_computed_alone(batch):
    model = small_model(MIXED_CELL, seed=4)
    requested = (*PROXIES, "snip", "grasp", "synflow")
    fused = score_model(model, *batch, requested)
    for name in requested:
        assert relative_error(fused[name], score_model(model, *batch, (name,))[name]) < 1e-6, name


def test_loss_and_jacobian_passes_are_shared(batch):
    """One forward of the batch per request: nwot reads its codes from the loss or Jacobian pass another
    proxy runs (whatever the order asked), else from a forward of its own; its value is the same."""
    model = small_model(MIXED_CELL)
    forwards: dict[tuple[str, ...], list[int]] = {}
    values: dict[tuple[str, ...], float] = {}
    requests = [("grad_norm", "fisher", "snip"), ("nwot", "jacob_cov"), ("nwot", "snip", "grasp"), ("nwot",)]
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        for proxies in requests:
            sizes.clear()
            with_labels = "snip" in proxies or "fisher" in proxies
            scores = score_model(model, batch[0], batch[1] if with_labels else None, proxies)
            forwards[proxies], values[proxies] = list(sizes), scores.get("nwot", math.nan)
    finally:
        handle.remove()
    assert all(sizes == [len(batch[0])] for sizes in forwards.values()), forwards
    assert values[("nwot", "jacob_cov")] == values[("nwot", "snip", "grasp")] == values[("nwot",)]


def test_real_cifar10_images_give_finite_scores_on_a_full_size_cell():
    if not CIFAR10_NPZ.exists():
        pytest.skip(f"shared CIFAR-10 batch not found at {CIFAR10_NPZ}")
    real = load_calibration_batch("cifar10", CIFAR10_NPZ, batch_size=16)
    torch.manual_seed(0)
    model = nb201.build_model(MIXED_CELL, num_classes=10, cells_per_stage=1)
    scores = score_model(model, real.inputs, real.targets, PROXIES)
    assert all(math.isfinite(value) for value in scores.values()), scores
