"""score_model and its ScoringContext: shared passes, split retries, failure semantics and results."""

import math

import pytest
import torch
from conftest import ALL_CONV, MIXED_CELL, small_model
from torch import nn

from scorers import (
    ProxyResult,
    ScoringContext,
    get_proxy,
    score_model,
    score_model_detailed,
)
from scorers.scoring import _next_split

PROXIES = ("snip", "grasp", "synflow")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_out_of_memory_retries_follow_the_reference_split_schedule():
    schedule, split = [], 1
    while (split := _next_split(split, 60)) is not None:
        schedule.append(split)
    assert schedule == [2, 3, 4, 5, 6, 10, 12, 15, 20, 30]
    assert _next_split(1, 1) is None and _next_split(1, 3) is None


def test_requested_proxies_share_one_data_forward(synthetic_batch):
    model = small_model(MIXED_CELL)
    calls = []
    handle = model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        score_model(model, *synthetic_batch, PROXIES)
        fused = list(calls)
        calls.clear()
        for name in PROXIES:
            score_model(model, *synthetic_batch, proxies=(name,))
    finally:
        handle.remove()
    assert sorted(fused) == [1, len(synthetic_batch[0])]
    assert sorted(calls) == [1, len(synthetic_batch[0]), len(synthetic_batch[0])]


def test_shared_quantities_are_computed_once_per_context(synthetic_batch):
    ctx = ScoringContext(small_model(MIXED_CELL), *synthetic_batch, [get_proxy("snip")])
    computed = []
    for _ in range(3):
        assert ctx.shared("weight_count", lambda c: computed.append(1) or len(c.weights)) == len(ctx.weights)
    assert computed == [1]
    assert ctx.gradients() is ctx.gradients()


def test_non_finite_values_come_back_as_such(synthetic_batch):
    inputs, targets = synthetic_batch
    poisoned = inputs.clone()
    poisoned[0, 0, 0, 0] = float("nan")
    results = score_model_detailed(small_model(MIXED_CELL), poisoned, targets, PROXIES)
    assert math.isnan(results["snip"].value) and math.isnan(results["grasp"].value)
    assert results["snip"].error is None and results["grasp"].error is None
    exploded = small_model(ALL_CONV)
    with torch.no_grad():
        for module in exploded.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(1e30)
    synflow = score_model_detailed(exploded, *synthetic_batch, proxies=("synflow",))["synflow"]
    assert not math.isfinite(synflow.value) and synflow.error is None


def test_a_failing_proxy_does_not_stop_the_others(synthetic_batch):
    model = small_model(MIXED_CELL)
    inputs, targets = synthetic_batch
    bad_targets = targets.clone()
    bad_targets[0] = 10
    results = score_model_detailed(model, inputs, bad_targets, PROXIES)
    for name in ("snip", "grasp"):
        assert math.isnan(results[name].value) and "out of bounds" in results[name].error
    assert results["synflow"].error is None
    assert results["synflow"].value == score_model(model, inputs, targets, PROXIES)["synflow"]


def test_results_carry_timings_and_are_frozen(synthetic_batch):
    results = score_model_detailed(small_model(MIXED_CELL), *synthetic_batch, PROXIES)
    assert list(results) == list(PROXIES)
    assert all(isinstance(r, ProxyResult) and r.seconds > 0 and r.error is None for r in results.values())
    with pytest.raises(AttributeError):
        results["snip"].value = 0.0


def test_misuse_is_reported_before_scoring(synthetic_batch):
    model = small_model(MIXED_CELL)
    inputs, targets = synthetic_batch
    with pytest.raises(ValueError, match="need targets"):
        score_model(model, inputs, None, PROXIES)
    with pytest.raises(ValueError, match="labels for"):
        score_model(model, inputs, targets[:3], PROXIES)
    with pytest.raises(ValueError, match="split"):
        score_model_detailed(model, inputs, targets, PROXIES, split=len(inputs) + 1)
