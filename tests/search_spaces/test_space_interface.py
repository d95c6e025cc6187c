"""Every registered search space honours the `SearchSpace` interface the service relies on: normalised text
that parses to itself, a seeded sample of distinct valid architectures, stable canonical keys, networks
with one logit per class, model options checked by name, a memory size that bounds the space's networks,
and every proxy it does not refuse running on a small network of it."""

import math

import pytest
import torch

from scorers import list_proxies, score_model_detailed
from scorers.calibration import DATASETS, load_calibration_batch
from search_spaces import DEFAULT_SPACE, SPACES, ModelOptionError, SearchSpace, get_space
from search_spaces.base import NetworkSize

NAMES = sorted(SPACES)
DRAWN = [name for name in NAMES if name != "onnx"]
"""The spaces whose architectures can be drawn: `onnx` networks are uploaded (tests/search_spaces/test_onnx.py)."""


def smallest_options(space: SearchSpace) -> dict[str, int]:
    """Every network option at its lowest allowed value: the cheapest network of the space."""
    return {name: option.low for name, option in space.hyper_parameters.items()}


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(params=NAMES)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]


@pytest.fixture(params=DRAWN)
def drawn_space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]


def test_the_registry_knows_nb201_and_nats_sss_by_name() -> None:
    assert {"nb201", "nats_sss"} <= set(SPACES) and DEFAULT_SPACE == "nb201"
    assert all(SPACES[name].name == name for name in SPACES)
    with pytest.raises(KeyError, match="unknown search space 'nope'; known spaces: "):
        get_space("nope")


def test_the_metadata_is_complete(space: SearchSpace) -> None:
    assert space.title and space.datasets and set(space.datasets) <= set(DATASETS)
    assert space.size is None or space.size > 0
    assert set(space.unsupported_proxies) <= {info.name for info in list_proxies()}
    assert all(reason for reason in space.unsupported_proxies.values())
    for name, option in space.hyper_parameters.items():
        assert option.low <= option.default <= option.high and option.description, name


def test_parsing_the_normalised_text_gives_it_back(space: SearchSpace) -> None:
    assert space.parse(space.example) == space.example
    for arch in space.sample(5, 0) if space.name in DRAWN else []:
        assert space.parse(arch) == arch
        assert space.parse(space.parse(arch)) == arch


def test_unreadable_input_is_a_value_error(space: SearchSpace) -> None:
    for bad in ("", "garbage", 3.5, None, {"no": "such"}):
        with pytest.raises(ValueError):
            space.parse(bad)


def test_the_sample_is_seeded_distinct_and_valid(drawn_space: SearchSpace) -> None:
    space = drawn_space
    first = space.sample(8, 11)
    assert first == space.sample(8, 11)
    assert len(set(first)) == 8
    assert space.sample(8, 12) != first
    listed = space.enumerate()
    if space.size is None:
        assert listed is None
    else:
        assert listed is not None and len(listed) == len(set(listed)) == space.size
        assert set(first) <= set(listed)


def test_canonical_keys_are_stable(drawn_space: SearchSpace) -> None:
    space = drawn_space
    for arch in space.sample(6, 5):
        key = space.canonical_key(arch)
        assert isinstance(key, str) and key
        assert space.canonical_key(space.parse(arch)) == key == space.canonical_key(arch)
    if space.singleton_classes:
        archs = space.sample(50, 2)
        assert len({space.canonical_key(arch) for arch in archs}) == 50


@pytest.mark.parametrize("num_classes", [10, 100])
def test_the_network_has_one_logit_per_class(space: SearchSpace, num_classes: int) -> None:
    if space.name == "onnx" and num_classes != 10:
        pytest.skip("an ONNX network's classes are its file's (the example has 10)")
    torch.manual_seed(0)
    model = space.build_model(space.example, num_classes, **smallest_options(space))
    logits = model(torch.randn(2, 3, 32, 32))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


def test_model_options_fill_defaults_and_refuse_by_name(space: SearchSpace) -> None:
    defaults = {name: option.default for name, option in space.hyper_parameters.items()}
    assert space.model_options({}) == defaults
    with pytest.raises(ModelOptionError) as unknown:
        space.model_options({"no_such_option": 1})
    assert unknown.value.option == "no_such_option"
    for name, option in space.hyper_parameters.items():
        for bad in (option.high + 1, option.low - 1, True, float(option.default), str(option.default)):
            with pytest.raises(ModelOptionError) as refused:
                space.model_options({name: bad})
            assert refused.value.option == name and name in str(refused.value)
        with pytest.raises(ValueError, match=name):
            space.build_model(space.example, 10, **{name: option.high + 1})


def test_the_network_size_bounds_the_spaces_networks(drawn_space: SearchSpace) -> None:
    """The memory bound's input: at least the parameters of the largest network (as built) and so of any
    sampled architecture's, and a positive count of saved activations."""
    space = drawn_space
    options = smallest_options(space)
    size = space.network_size(10, 32, **options)
    largest = space.build_model(space.largest_architecture(), 10, **options)
    assert size.parameters >= parameter_count(largest)
    assert size.saved_floats_per_image > 0
    for arch in space.sample(10, 1):
        assert parameter_count(space.build_model(arch, 10, **options)) <= size.parameters, arch


def test_the_generic_size_count_agrees_with_nb201s_formulas() -> None:
    """The default `network_size` (built on the meta device, saved tensors counted) against NB201's exact
    formulas: the same parameters, and the activations the formula counts plus what it leaves out,
    BatchNorm's per-channel statistics and the logits (a few per cent of one image's activations)."""
    nb201 = get_space("nb201")
    for options, image_size in (
        ({"channels": 16, "cells_per_stage": 5}, 32),
        ({"channels": 6, "cells_per_stage": 2}, 16),
    ):
        formula = nb201.network_size(10, image_size, **options)
        counted = SearchSpace.network_size(nb201, 10, image_size, **options)
        assert isinstance(counted, NetworkSize)
        assert counted.parameters == formula.parameters
        assert formula.saved_floats_per_image <= counted.saved_floats_per_image <= 1.05 * formula.saved_floats_per_image


def test_every_proxy_the_space_does_not_refuse_runs_on_a_small_network(space: SearchSpace, one_torch_thread) -> None:
    """Every registered proxy (the default set among them), on the CPU and a batch of 4 images."""
    batch = load_calibration_batch("cifar10", "synthetic", batch_size=4, seed=0)
    proxies = [info.name for info in list_proxies() if info.name not in space.unsupported_proxies]
    torch.manual_seed(0)
    model = space.build_model(space.example, 10, **smallest_options(space))
    results = score_model_detailed(model, batch.inputs, batch.targets, proxies)
    assert {name: result.error for name, result in results.items() if result.error} == {}
    assert all(not math.isnan(result.value) for result in results.values())
