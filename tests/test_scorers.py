"""Zero-cost proxies on real NAS-Bench-201 networks: invariants, fused == one-by-one, agreement with an
independent direct computation of each definition, failure semantics, split, and a correlation smoke."""

import copy
import csv
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import relative_error
from scipy.stats import spearmanr
from torch import nn

from scorers import (
    ProxyResult,
    ScoringContext,
    UnknownProxyError,
    get_proxy,
    list_proxies,
    register_proxy,
    score_model,
    score_model_detailed,
)
from scorers.calibration import load_calibration_batch
from scorers.device import configure_cpu_threads, resolve_device
from scorers.scoring import _next_split
from scorers.second_order import fast_second_order
from search_spaces import nb201

PROXIES = ("snip", "grasp", "synflow")
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"
DEAD_EDGES = "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
CELLS = (ALL_CONV, MIXED, DEAD_EDGES)


def small_model(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nb201.build_model(arch, num_classes=10, channels=8, cells_per_stage=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch():
    synthetic = load_calibration_batch("cifar10", "synthetic", batch_size=16, seed=0)
    return synthetic.inputs, synthetic.targets


# Independent direct computations of each definition (deep copies, masks, module replacement).

def _scored_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _chunks(inputs, targets, split):
    size = len(inputs)
    return [(inputs[i * size // split:(i + 1) * size // split], targets[i * size // split:(i + 1) * size // split])
            for i in range(split)]


def direct_snip(model, inputs, targets, split=1) -> float:
    net = copy.deepcopy(model).train()
    names = {id(p): n for n, p in net.named_parameters()}
    weights = {names[id(m.weight)]: m.weight.detach() for m in _scored_layers(net)}
    masks = {name: torch.ones_like(w, requires_grad=True) for name, w in weights.items()}
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        masked = {name: weights[name] * masks[name] for name in weights}
        logits = torch.func.functional_call(net, masked, (chunk_inputs,))
        F.cross_entropy(logits, chunk_targets).backward()
    return sum(mask.grad.abs().sum().item() for mask in masks.values() if mask.grad is not None)


def direct_grasp(model, inputs, targets, split=1) -> float:
    net = copy.deepcopy(model).train()
    weights = [m.weight for m in _scored_layers(net)]
    first = [torch.zeros_like(w) for w in weights]
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        grads = torch.autograd.grad(F.cross_entropy(net(chunk_inputs), chunk_targets), weights, allow_unused=True)
        first = [f + g if g is not None else f for f, g in zip(first, grads)]
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        live = torch.autograd.grad(F.cross_entropy(net(chunk_inputs), chunk_targets), weights,
                                   create_graph=True, allow_unused=True)
        sum((f * g).sum() for f, g in zip(first, live) if g is not None).backward()
    return sum((-w.detach() * w.grad).sum().item() for w in weights if w.grad is not None)


def direct_synflow(model, inputs) -> float:
    net = copy.deepcopy(model).train()
    for name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    net.double()
    net(torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)).sum().backward()
    return sum((m.weight * m.weight.grad).abs().sum().item() for m in _scored_layers(net) if m.weight.grad is not None)


# Registry

def test_registry_lists_builtin_proxies_with_metadata():
    infos = {info.name: info for info in list_proxies()}
    assert set(PROXIES) <= set(infos)
    assert infos["synflow"].needs_data is False and infos["synflow"].needs_labels is False
    assert infos["snip"].needs_labels and infos["grasp"].needs_second_order and not infos["snip"].needs_second_order
    assert all(infos[name].paper and infos[name].higher_is_better for name in PROXIES)
    assert get_proxy("grasp") is infos["grasp"]


def test_unknown_proxy_is_a_key_error_listing_known_names(batch):
    with pytest.raises(KeyError) as caught:
        get_proxy("snap")
    assert isinstance(caught.value, UnknownProxyError)
    assert "snap" in str(caught.value) and all(name in str(caught.value) for name in PROXIES)
    with pytest.raises(UnknownProxyError):
        score_model(small_model(MIXED), *batch, proxies=("snip", "snap"))


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_proxy(name="snip", needs_data=True, needs_labels=True, higher_is_better=True, paper="x")(
            lambda ctx: 0.0)


# Invariants

@pytest.mark.parametrize("arch", CELLS)
def test_scores_are_deterministic(arch, batch):
    first = score_model(small_model(arch), *batch, PROXIES)
    again = score_model(small_model(arch), *batch, PROXIES)
    assert first == again
    assert all(math.isfinite(value) for value in first.values())


@pytest.mark.parametrize("training", [True, False])
def test_scoring_never_mutates_the_model(training, batch):
    model = small_model(MIXED).train(training)
    next(model.parameters()).requires_grad_(False)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    flags = [(m.training, dict(m.__dict__).get("forward")) for m in model.modules()]
    requires_grad = [p.requires_grad for p in model.parameters()]
    score_model_detailed(model, *batch, PROXIES, split=2)
    score_model(model, *batch, PROXIES)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(before[k].dtype == after[k].dtype for k in before)
    assert [(m.training, dict(m.__dict__).get("forward")) for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_synflow_ignores_the_data_and_needs_no_labels(batch):
    model = small_model(ALL_CONV)
    other = load_calibration_batch("cifar10", "synthetic", batch_size=4, seed=9)
    alone = score_model(model, other.inputs, None, proxies=("synflow",))
    assert alone["synflow"] == score_model(model, *batch, PROXIES)["synflow"] > 0


@pytest.mark.parametrize("arch", CELLS)
def test_snip_is_non_negative(arch, batch):
    assert score_model(small_model(arch), *batch, proxies=("snip",))["snip"] >= 0


@pytest.mark.parametrize("arch", CELLS)
def test_fused_results_equal_each_proxy_computed_alone(arch, batch):
    model = small_model(arch)
    fused = score_model(model, *batch, PROXIES)
    for name in PROXIES:
        assert relative_error(fused[name], score_model(model, *batch, proxies=(name,))[name]) < 1e-5


@pytest.mark.parametrize("arch", CELLS)
def test_values_match_a_direct_computation_of_each_definition(arch, batch):
    model = small_model(arch, seed=1)
    scores = score_model(model, *batch, PROXIES)
    assert relative_error(scores["snip"], direct_snip(model, *batch)) < 1e-4
    assert relative_error(scores["grasp"], direct_grasp(model, *batch)) < 1e-4
    assert relative_error(scores["synflow"], direct_synflow(model, batch[0])) < 1e-4


def test_split_accumulates_over_chunks_like_the_reference(batch):
    model = small_model(ALL_CONV, seed=2)
    results = score_model_detailed(model, *batch, PROXIES, split=2)
    assert {result.split for result in results.values()} == {2}
    assert relative_error(results["snip"].value, direct_snip(model, *batch, split=2)) < 1e-4
    assert relative_error(results["grasp"].value, direct_grasp(model, *batch, split=2)) < 1e-4
    assert results["synflow"].value == score_model(model, *batch, PROXIES)["synflow"]


def test_out_of_memory_retries_follow_the_reference_split_schedule():
    schedule, split = [], 1
    while (split := _next_split(split, 60)) is not None:
        schedule.append(split)
    assert schedule == [2, 3, 4, 5, 6, 10, 12, 15, 20, 30]
    assert _next_split(1, 1) is None and _next_split(1, 3) is None


def test_requested_proxies_share_one_data_forward(batch):
    model = small_model(MIXED)
    calls = []
    handle = model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        score_model(model, *batch, PROXIES)
        fused = list(calls)
        calls.clear()
        for name in PROXIES:
            score_model(model, *batch, proxies=(name,))
    finally:
        handle.remove()
    assert sorted(fused) == [1, len(batch[0])]
    assert sorted(calls) == [1, len(batch[0]), len(batch[0])]


def test_shared_quantities_are_computed_once_per_context(batch):
    ctx = ScoringContext(small_model(MIXED), *batch, [get_proxy("snip")])
    computed = []
    for _ in range(3):
        assert ctx.shared("weight_count", lambda c: computed.append(1) or len(c.weights)) == len(ctx.weights)
    assert computed == [1]
    assert ctx.gradients() is ctx.gradients()


# The cheaper double backward

def _hessian_products(model: nn.Module, inputs, targets) -> list[torch.Tensor]:
    weights = [m.weight for m in _scored_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), targets), weights, create_graph=True)
    return list(torch.autograd.grad(grads, weights, grad_outputs=[g.detach() for g in grads]))


def test_fast_double_backward_equals_autograd_in_float64(batch):
    model = small_model(ALL_CONV).double().train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(False)
            module.bias.requires_grad_(False)
    inputs, targets = batch[0].double(), batch[1]
    expected = _hessian_products(model, inputs, targets)
    with fast_second_order(model):
        assert "_Conv2d" in model.stem[0](inputs).grad_fn.name()
        fast = _hessian_products(model, inputs, targets)
    assert not any("forward" in m.__dict__ for m in model.modules())
    for ours, reference in zip(fast, expected, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("stride", "padding", "dilation", "groups", "affine"),
                         [(1, 1, 1, 1, True), (2, 0, 1, 2, False), (1, 2, 2, 2, True)])
def test_fast_layers_pass_gradgradcheck(stride, padding, dilation, groups, affine):
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(4, 4, 3, stride, padding, dilation, groups, bias=True),
                           nn.BatchNorm2d(4, affine=affine), nn.ReLU(), nn.Conv2d(4, 2, 1)).double()
    buffers = dict(layers.named_buffers())
    frozen = {name: p.detach() for name, p in layers.named_parameters() if name.startswith("1.")}
    names = [name for name, _ in layers.named_parameters() if not name.startswith("1.")]

    def network(inputs, *params):
        return torch.func.functional_call(layers, ({**frozen, **dict(zip(names, params))}, buffers), (inputs,))

    inputs = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for name, p in layers.named_parameters() if name in names]
    with fast_second_order(layers):
        assert "_Conv2d" in layers[0](inputs).grad_fn.name()
        batchnorm_state = {name.split(".", 1)[1]: p for name, p in frozen.items()}
        assert "_BatchNorm2d" in torch.func.functional_call(layers[1], batchnorm_state, (inputs,)).grad_fn.name()
        assert torch.autograd.gradgradcheck(network, (inputs, *params))


# Failure semantics

def test_non_finite_values_come_back_as_such(batch):
    inputs, targets = batch
    poisoned = inputs.clone()
    poisoned[0, 0, 0, 0] = float("nan")
    results = score_model_detailed(small_model(MIXED), poisoned, targets, PROXIES)
    assert math.isnan(results["snip"].value) and math.isnan(results["grasp"].value)
    assert results["snip"].error is None and results["grasp"].error is None
    exploded = small_model(ALL_CONV)
    with torch.no_grad():
        for module in exploded.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(1e30)
    synflow = score_model_detailed(exploded, *batch, proxies=("synflow",))["synflow"]
    assert not math.isfinite(synflow.value) and synflow.error is None


def test_a_failing_proxy_does_not_stop_the_others(batch):
    model = small_model(MIXED)
    inputs, targets = batch
    bad_targets = targets.clone()
    bad_targets[0] = 10
    results = score_model_detailed(model, inputs, bad_targets, PROXIES)
    for name in ("snip", "grasp"):
        assert math.isnan(results[name].value) and "out of bounds" in results[name].error
    assert results["synflow"].error is None
    assert results["synflow"].value == score_model(model, inputs, targets, PROXIES)["synflow"]


def test_results_carry_timings_and_are_frozen(batch):
    results = score_model_detailed(small_model(MIXED), *batch, PROXIES)
    assert list(results) == list(PROXIES)
    assert all(isinstance(r, ProxyResult) and r.seconds > 0 and r.error is None for r in results.values())
    with pytest.raises(AttributeError):
        results["snip"].value = 0.0


def test_misuse_is_reported_before_scoring(batch):
    model = small_model(MIXED)
    inputs, targets = batch
    with pytest.raises(ValueError, match="need targets"):
        score_model(model, inputs, None, PROXIES)
    with pytest.raises(ValueError, match="labels for"):
        score_model(model, inputs, targets[:3], PROXIES)
    with pytest.raises(ValueError, match="split"):
        score_model_detailed(model, inputs, targets, PROXIES, split=len(inputs) + 1)


# Devices

def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x"):
        with pytest.raises(ValueError):
            resolve_device(bad)


def test_configure_cpu_threads_sets_torch_threads():
    previous = torch.get_num_threads()
    try:
        assert configure_cpu_threads(3) == torch.get_num_threads() == 3
        assert configure_cpu_threads(0) == 1
        assert 1 <= configure_cpu_threads() == torch.get_num_threads() <= (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_resolve_device_explains_missing_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_match_cpu(batch):
    model = small_model(ALL_CONV)
    on_cpu = score_model(model, *batch, PROXIES)
    on_gpu = score_model(copy.deepcopy(model).cuda(), *batch, PROXIES)
    for name in PROXIES:
        assert relative_error(on_gpu[name], on_cpu[name]) < 1e-3


# Smoke check against the benchmark

@pytest.mark.slow
def test_synflow_ranks_a_100_cell_sample_like_the_benchmark(nb201_csv, cifar10_npz):
    """SynFlow needs one example per cell, so 100 full-size cells stay well under a minute."""
    with open(nb201_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    sample = [rows[i] for i in np.random.default_rng(0).choice(len(rows), size=100, replace=False)]
    inputs = load_calibration_batch("cifar10", cifar10_npz, batch_size=1).inputs
    scores = []
    for row in sample:
        torch.manual_seed(int(row["index"]))
        model = nb201.build_model(row["arch"], num_classes=10)
        scores.append(score_model(model, inputs, None, proxies=("synflow",))["synflow"])
    rho = spearmanr(scores, [float(row["cifar10_test_acc"]) for row in sample]).statistic
    assert rho > 0.6
