"""The proxy registry: built-in proxies and their metadata, unknown names, taken names."""

import pytest
from conftest import MIXED_CELL, small_model

from scorers import (
    UnknownProxyError,
    get_proxy,
    list_proxies,
    register_proxy,
    score_model,
)

PROXIES = ("snip", "grasp", "synflow")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_lists_builtin_proxies_with_metadata():
    infos = {info.name: info for info in list_proxies()}
    assert set(PROXIES) <= set(infos)
    assert infos["synflow"].needs_data is False and infos["synflow"].needs_labels is False
    assert infos["snip"].needs_labels and infos["grasp"].needs_second_order and not infos["snip"].needs_second_order
    assert all(infos[name].paper and infos[name].higher_is_better for name in PROXIES)
    assert get_proxy("grasp") is infos["grasp"]


def test_unknown_proxy_is_a_key_error_listing_known_names(synthetic_batch):
    with pytest.raises(KeyError) as caught:
        get_proxy("snap")
    assert isinstance(caught.value, UnknownProxyError)
    assert "snap" in str(caught.value) and all(name in str(caught.value) for name in PROXIES)
    with pytest.raises(UnknownProxyError):
        score_model(small_model(MIXED_CELL), *synthetic_batch, proxies=("snip", "snap"))


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_proxy(name="snip", needs_data=True, needs_labels=True, higher_is_better=True, paper="x")(
            lambda ctx: 0.0
        )
