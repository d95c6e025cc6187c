"""Scoring configurations per search space: NB201's identities are the ones stored scores were computed
under (pinned fingerprints, computed before configurations knew about spaces), another space's never equal
an NB201 one, the network options are the space's (422 naming `config.<option>`), and the memory bound is
the space's largest network."""

import pytest

from app.services.configs import ConfigOptions, ResolvedConfig, check_model_memory, model_memory, resolve_config
from app.services.errors import InvalidInput
from scorers.calibration import builtin_image_set
from scorers.presets import DEFAULT_PROXIES
from search_spaces import get_space

# (dataset, options, real images?) -> the fingerprint the configuration had before spaces were an interface.
PINNED = [
    ("cifar10", {"data": "synthetic"}, False, "57e07846ed930f5ddc97156b161f74220b0b1a0a77215a9f93f93b572a120c10"),
    (
        "cifar100",
        {"data": "synthetic", "batch_size": 8, "channels": 4, "cells_per_stage": 1},
        False,
        "c9f45a72086737c8b108426f9650a8a86093d9cac512bb20d827ef4d0d6e352a",
    ),
    (
        "imagenet16-120",
        {"data": "synthetic", "seed": 3, "sampling": "grasp"},
        False,
        "218512f2d9814d3fb00a595406ec5cb7609adb82e4f37231dedc734774d90115",
    ),
    ("cifar10", {}, True, "514b608332faa728927893d5027e23327d526577cdec31d167ecdc985c66dffc"),
    (
        "cifar10",
        {"batch_size": 8, "channels": 4, "cells_per_stage": 1},
        True,
        "5b503dbe959f99b6ab23e6aa016c50ad9a75d59d7584d4e08fbb60ee647cffe0",
    ),
]


def resolved(dataset: str, options: ConfigOptions, real: bool = False, space: str = "nb201") -> ResolvedConfig:
    """A configuration resolved without a database: synthetic data, or the real CIFAR-10 set shipped with
    nasscore given as the run's images (as `nasscore batch --data` gives a file's)."""
    images = builtin_image_set(dataset) if real else None
    return resolve_config(None, None, dataset, options, images, space=space)


@pytest.mark.parametrize(("dataset", "options", "real", "fingerprint"), PINNED)
def test_nb201_fingerprints_are_the_stored_ones(dataset: str, options: dict, real: bool, fingerprint: str) -> None:
    config = resolved(dataset, ConfigOptions(**options), real)
    assert config.fingerprint == fingerprint
    assert "space" not in config.model_params


def test_another_spaces_configuration_names_its_space_and_never_equals_nb201s() -> None:
    options = ConfigOptions(data="synthetic")
    nats = resolved("cifar10", options, space="nats_sss")
    assert nats.model_params == {"space": "nats_sss", "num_classes": 10}
    nb201 = resolved("cifar10", options)
    assert nats.fingerprint != nb201.fingerprint
    assert resolved("cifar10", options, space="nats_sss").fingerprint == nats.fingerprint


def test_network_options_are_the_spaces() -> None:
    assert resolved("cifar100", ConfigOptions(data="synthetic", channels=8)).model_params == {
        "num_classes": 100,
        "channels": 8,
        "cells_per_stage": 5,
    }
    for space, options, field, message in [
        ("nats_sss", {"channels": 8}, "config.channels", "unknown model option 'channels' for space nats_sss"),
        ("nb201", {"layers": 8}, "config.layers", "unknown model option 'layers' for space nb201"),
        ("nb201", {"channels": 129}, "config.channels", "channels must be an integer from 1 to 128, got 129"),
        ("nb201", {"cells_per_stage": True}, "config.cells_per_stage", "from 1 to 10, got True"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            resolved("cifar10", ConfigOptions(data="synthetic", **options), space=space)
        assert (refused.value.field, message in refused.value.message) == (field, True)


def test_a_space_refuses_a_dataset_its_network_is_not_defined_for() -> None:
    with pytest.raises(InvalidInput) as refused:
        resolved("svhn", ConfigOptions(data="synthetic"), space="nats_sss")
    assert refused.value.field == "dataset"


def test_the_memory_bound_is_the_spaces_largest_network() -> None:
    nats = get_space("nats_sss")
    estimate = model_memory("cifar10", ConfigOptions(batch_size=10), DEFAULT_PROXIES, "nats_sss")
    size = nats.network_size(10, 32)
    assert estimate.parameters == size.parameters
    assert estimate.activation_floats == 10 * size.saved_floats_per_image
    assert estimate.second_order
    assert model_memory("cifar10", ConfigOptions(), ["snip"], "nats_sss").peak_mb < estimate.peak_mb * 64 / 10


def test_a_too_large_nats_configuration_names_batch_size_and_the_largest_that_fits() -> None:
    check_model_memory("cifar10", ConfigOptions(), DEFAULT_PROXIES, 4096, "nats_sss")
    with pytest.raises(InvalidInput) as refused:
        check_model_memory("cifar10", ConfigOptions(batch_size=1024), DEFAULT_PROXIES, 1024, "nats_sss")
    assert refused.value.field == "config.batch_size"
    assert "scoring the largest nats_sss network on 1024 images with a second-order proxy" in refused.value.message
    largest = int(refused.value.message.rpartition("batch_size may be at most ")[2])
    check_model_memory("cifar10", ConfigOptions(batch_size=largest), DEFAULT_PROXIES, 1024, "nats_sss")
    with pytest.raises(InvalidInput):
        check_model_memory("cifar10", ConfigOptions(batch_size=largest + 1), DEFAULT_PROXIES, 1024, "nats_sss")
    with pytest.raises(InvalidInput) as nothing_fits:
        check_model_memory("cifar10", ConfigOptions(batch_size=2), DEFAULT_PROXIES, 64, "nats_sss")
    assert nothing_fits.value.message.endswith("lower config.batch_size")
