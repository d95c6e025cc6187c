"""The model memory estimate against real networks: its parameter count is the built network's, exactly,
for any cell; its activation count is what a real forward saves for backward (measured with autograd's
saved-tensor hooks); and its peak stays above the memory really used to score a network with the proxies
(measured as the peak resident memory of a fresh process), without overstating it by more than a factor of
four. Then the check that uses it: the default configuration fits the default budget, and a refusal names
the field to lower with the largest value that fits."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from conftest import ALL_CONV, ALL_NONE, MIXED_CELL, README_CELL

from app.services.configs import ConfigOptions, check_model_memory, model_memory
from app.services.errors import InvalidInput
from scorers.calibration import DATASETS
from scorers.presets import DEFAULT_PROXIES
from search_spaces import nb201
from search_spaces.nb201.network import WIDEST_CELL
from search_spaces.nb201.network import parameter_count as nb201_parameter_count
from search_spaces.nb201.network import saved_activations as nb201_saved_activations

FIRST_ORDER_PROXIES = [name for name in DEFAULT_PROXIES if name != "grasp"]
# A fresh process scores the widest cell once on a 1-channel network (so that code loaded on first use is
# not counted), then resets its peak resident memory and scores the real network: the peak's growth is
# what scoring it took.
PEAK_SCRIPT = """
import gc, json, sys
import torch
from scorers import score_model_detailed
from scorers.calibration import DATASETS, load_calibration_batch
from search_spaces import nb201

arch, dataset, channels, cells, batch_size, proxies = json.loads(sys.argv[1])
torch.set_num_threads(1)

def kib(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key))

def network_and_batch(channels, cells, batch_size):
    batch = load_calibration_batch(dataset, "synthetic", batch_size=batch_size, seed=0)
    torch.manual_seed(0)
    model = nb201.build_model(arch, DATASETS[dataset].num_classes, channels=channels, cells_per_stage=cells)
    return model, batch

model, batch = network_and_batch(1, 1, 2)
score_model_detailed(model, batch.inputs, batch.targets, proxies)
model, batch = network_and_batch(channels, cells, batch_size)
gc.collect()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = kib("VmRSS")
results = score_model_detailed(model, batch.inputs, batch.targets, proxies)
errors = [result.error for result in results.values() if result.error]
print(json.dumps({"peak_bytes": (kib("VmHWM") - before) * 1024, "errors": errors}))
"""


@pytest.mark.parametrize("arch", [ALL_CONV, MIXED_CELL, ALL_NONE, README_CELL])
@pytest.mark.parametrize(
    ("dataset", "channels", "cells"), [("cifar10", 16, 5), ("cifar100", 5, 2), ("imagenet16-120", 3, 1)]
)
def test_the_parameter_count_is_the_built_networks(arch: str, dataset: str, channels: int, cells: int) -> None:
    classes = DATASETS[dataset].num_classes
    network = nb201.build_model(arch, classes, channels=channels, cells_per_stage=cells)
    built = sum(parameter.numel() for parameter in network.parameters())
    assert nb201_parameter_count(nb201.parse(arch).ops, classes, channels, cells) == built


def _saved_activation_floats(dataset: str, channels: int, cells: int, batch_size: int) -> int:
    """Floats in the tensors (parameters aside) one forward and loss of the widest network saves for backward."""
    spec = DATASETS[dataset]
    torch.manual_seed(0)
    network = nb201.build_model(ALL_CONV, spec.num_classes, channels=channels, cells_per_stage=cells)
    parameters = {parameter.untyped_storage().data_ptr() for parameter in network.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes() // tensor.element_size()
        return tensor

    inputs = torch.randn(batch_size, 3, spec.image_size, spec.image_size)
    targets = torch.randint(spec.num_classes, (batch_size,))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        torch.nn.functional.cross_entropy(network(inputs), targets)
    return sum(saved.values())


@pytest.mark.parametrize(
    ("dataset", "channels", "cells", "batch_size"),
    [("cifar10", 8, 1, 8), ("cifar10", 4, 3, 4), ("cifar100", 5, 2, 3), ("imagenet16-120", 6, 2, 5)],
)
def test_the_activation_count_is_what_a_forward_saves(dataset: str, channels: int, cells: int, batch_size: int) -> None:
    assert tuple(nb201.parse(ALL_CONV).ops) == WIDEST_CELL
    measured = _saved_activation_floats(dataset, channels, cells, batch_size)
    estimated = nb201_saved_activations(batch_size, DATASETS[dataset].image_size, channels, cells)
    # Only BatchNorm's per-channel statistics and the logits are left out of the estimate.
    assert estimated <= measured <= estimated * 1.02


@pytest.mark.parametrize(
    ("dataset", "channels", "cells", "batch_size", "proxies"),
    [
        ("cifar10", 8, 2, 64, list(DEFAULT_PROXIES)),
        ("cifar10", 8, 2, 64, FIRST_ORDER_PROXIES),
        ("cifar10", 64, 1, 2, list(DEFAULT_PROXIES)),
        ("imagenet16-120", 16, 2, 64, list(DEFAULT_PROXIES)),
    ],
)
def test_the_peak_estimate_bounds_the_memory_scoring_takes(
    dataset: str, channels: int, cells: int, batch_size: int, proxies: list[str]
) -> None:
    try:
        with open("/proc/self/clear_refs", "w"):
            pass
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory")
    arguments = json.dumps([ALL_CONV, dataset, channels, cells, batch_size, proxies])
    run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, arguments], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout)
    assert measured["errors"] == []
    options = ConfigOptions(batch_size=batch_size, channels=channels, cells_per_stage=cells)
    estimate = model_memory(dataset, options, proxies).peak_bytes
    assert estimate / 4 <= measured["peak_bytes"] <= estimate


def test_the_default_configuration_fits_the_default_budget() -> None:
    check_model_memory("cifar10", ConfigOptions(), DEFAULT_PROXIES, 4096)
    check_model_memory("imagenet16-120", ConfigOptions(), DEFAULT_PROXIES, 4096)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (ConfigOptions(batch_size=1024), "batch_size"),
        (ConfigOptions(channels=128), "channels"),
        (ConfigOptions(channels=48, cells_per_stage=10), "channels"),
        (ConfigOptions(channels=24, cells_per_stage=10), "cells_per_stage"),
    ],
)
def test_a_refusal_names_the_field_raised_most_and_the_largest_value_that_fits(
    options: ConfigOptions, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_model_memory("cifar10", options, DEFAULT_PROXIES, 4096)
    assert refused.value.field == f"config.{field}"
    assert "with a second-order proxy (grasp)" in refused.value.message
    largest = int(refused.value.message.rpartition(f"{field} may be at most ")[2])
    check_model_memory("cifar10", replace(options, **{field: largest}), DEFAULT_PROXIES, 4096)
    with pytest.raises(InvalidInput):
        check_model_memory("cifar10", replace(options, **{field: largest + 1}), DEFAULT_PROXIES, 4096)


def test_without_second_order_proxies_more_fits() -> None:
    options = ConfigOptions(batch_size=200)
    with pytest.raises(InvalidInput):
        check_model_memory("cifar10", options, DEFAULT_PROXIES, 4096)
    check_model_memory("cifar10", options, FIRST_ORDER_PROXIES, 4096)


def test_when_no_value_of_the_field_fits_every_field_is_named() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_model_memory("cifar10", ConfigOptions(batch_size=128), DEFAULT_PROXIES, 64)
    assert refused.value.field == "config.batch_size"
    assert refused.value.message.endswith("lower config.batch_size, config.channels, config.cells_per_stage")
