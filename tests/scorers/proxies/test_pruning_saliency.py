"""SNIP, GraSP and SynFlow on real NAS-Bench-201 networks: invariants, fused == one-by-one, agreement
with an independent direct computation of each definition, and a correlation smoke against the benchmark."""

import copy
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_CONV, MIXED_CELL, relative_error, scored_layers, small_model
from scipy.stats import spearmanr
from torch import nn

from scorers import (
    score_model,
    score_model_detailed,
)
from scorers.calibration import load_calibration_batch
from search_spaces import nb201

PROXIES = ("snip", "grasp", "synflow")


DEAD_EDGES = "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


CELLS = (ALL_CONV, MIXED_CELL, DEAD_EDGES)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _chunks(inputs, targets, split):
    size = len(inputs)
    return [
        (inputs[i * size // split : (i + 1) * size // split], targets[i * size // split : (i + 1) * size // split])
        for i in range(split)
    ]


def direct_snip(model, inputs, targets, split=1) -> float:
    net = copy.deepcopy(model).train()
    names = {id(p): n for n, p in net.named_parameters()}
    weights = {names[id(m.weight)]: m.weight.detach() for m in scored_layers(net)}
    masks = {name: torch.ones_like(w, requires_grad=True) for name, w in weights.items()}
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        masked = {name: weights[name] * masks[name] for name in weights}
        logits = torch.func.functional_call(net, masked, (chunk_inputs,))
        F.cross_entropy(logits, chunk_targets).backward()
    return sum(mask.grad.abs().sum().item() for mask in masks.values() if mask.grad is not None)


def direct_grasp(model, inputs, targets, split=1) -> float:
    net = copy.deepcopy(model).train()
    weights = [m.weight for m in scored_layers(net)]
    first = [torch.zeros_like(w) for w in weights]
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        grads = torch.autograd.grad(F.cross_entropy(net(chunk_inputs), chunk_targets), weights, allow_unused=True)
        first = [f + g if g is not None else f for f, g in zip(first, grads, strict=False)]
    for chunk_inputs, chunk_targets in _chunks(inputs, targets, split):
        live = torch.autograd.grad(
            F.cross_entropy(net(chunk_inputs), chunk_targets), weights, create_graph=True, allow_unused=True
        )
        sum((f * g).sum() for f, g in zip(first, live, strict=False) if g is not None).backward()
    return sum((-w.detach() * w.grad).sum().item() for w in weights if w.grad is not None)


def direct_synflow(model, inputs) -> float:
    net = copy.deepcopy(model).train()
    for _name, module in list(net.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.abs_()
    net.double()
    net(torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)).sum().backward()
    return sum((m.weight * m.weight.grad).abs().sum().item() for m in scored_layers(net) if m.weight.grad is not None)


@pytest.mark.parametrize("arch", CELLS)
def test_scores_are_deterministic(arch, synthetic_batch):
    first = score_model(small_model(arch), *synthetic_batch, PROXIES)
    again = score_model(small_model(arch), *synthetic_batch, PROXIES)
    assert first == again
    assert all(math.isfinite(value) for value in first.values())


@pytest.mark.parametrize("training", [True, False])
def test_scoring_never_mutates_the_model(training, synthetic_batch):
    model = small_model(MIXED_CELL).train(training)
    next(model.parameters()).requires_grad_(False)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    flags = [(m.training, dict(m.__dict__).get("forward")) for m in model.modules()]
    requires_grad = [p.requires_grad for p in model.parameters()]
    score_model_detailed(model, *synthetic_batch, PROXIES, split=2)
    score_model(model, *synthetic_batch, PROXIES)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(before[k].dtype == after[k].dtype for k in before)
    assert [(m.training, dict(m.__dict__).get("forward")) for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_synflow_ignores_the_data_and_needs_no_labels(synthetic_batch):
    model = small_model(ALL_CONV)
    other = load_calibration_batch("cifar10", "synthetic", batch_size=4, seed=9)
    alone = score_model(model, other.inputs, None, proxies=("synflow",))
    assert alone["synflow"] == score_model(model, *synthetic_batch, PROXIES)["synflow"] > 0


@pytest.mark.parametrize("arch", CELLS)
def test_snip_is_non_negative(arch, synthetic_batch):
    assert score_model(small_model(arch), *synthetic_batch, proxies=("snip",))["snip"] >= 0


@pytest.mark.parametrize("arch", CELLS)
def test_fused_results_equal_each_proxy_computed_alone(arch, synthetic_batch):
    model = small_model(arch)
    fused = score_model(model, *synthetic_batch, PROXIES)
    for name in PROXIES:
        assert relative_error(fused[name], score_model(model, *synthetic_batch, proxies=(name,))[name]) < 1e-5


@pytest.mark.parametrize("arch", CELLS)
def test_values_match_a_direct_computation_of_each_definition(arch, synthetic_batch):
    model = small_model(arch, seed=1)
    scores = score_model(model, *synthetic_batch, PROXIES)
    assert relative_error(scores["snip"], direct_snip(model, *synthetic_batch)) < 1e-4
    assert relative_error(scores["grasp"], direct_grasp(model, *synthetic_batch)) < 1e-4
    assert relative_error(scores["synflow"], direct_synflow(model, synthetic_batch[0])) < 1e-4


@pytest.mark.parametrize("split", [1, 2])
@pytest.mark.parametrize("arch", CELLS)
def test_grasp_is_the_definition_to_float64_precision(arch, split, synthetic_batch):
    """Our Hessian-gradient product runs through hand-written double-backward layers; in float64, where
    rounding is negligible, GraSP still equals a direct computation of its definition to 1e-9."""
    model = small_model(arch, seed=3).double()
    inputs, targets = synthetic_batch[0].double(), synthetic_batch[1]
    ours = score_model_detailed(model, inputs, targets, ("grasp",), split=split)["grasp"].value
    assert relative_error(ours, direct_grasp(model, inputs, targets, split=split)) < 1e-9


def test_split_accumulates_over_chunks_like_the_reference(synthetic_batch):
    model = small_model(ALL_CONV, seed=2)
    results = score_model_detailed(model, *synthetic_batch, PROXIES, split=2)
    assert {result.split for result in results.values()} == {2}
    assert relative_error(results["snip"].value, direct_snip(model, *synthetic_batch, split=2)) < 1e-4
    assert relative_error(results["grasp"].value, direct_grasp(model, *synthetic_batch, split=2)) < 1e-4
    assert results["synflow"].value == score_model(model, *synthetic_batch, PROXIES)["synflow"]


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
