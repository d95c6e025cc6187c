"""Vote presets: they name registered proxies and known methods; unknown names are explained."""

import pytest

from scorers import DEFAULT_PROXIES, get_proxy
from scorers.presets import DEFAULT_PRESET, PRESETS, UnknownPresetError, get_preset
from scorers.voting import (
    VOTE_METHODS,
)


def test_presets_name_registered_proxies_and_known_methods() -> None:
    assert PRESETS["mission"].proxies == ("snip", "grasp", "synflow")
    assert PRESETS["mission"].method == "mean_rank"
    assert set(PRESETS["azn"].proxies) == {"az_expressivity", "az_progressivity", "az_trainability", "az_complexity"}
    assert PRESETS["azn"].method == "log_rank"
    assert DEFAULT_PRESET in PRESETS
    assert tuple(dict.fromkeys(PRESETS["mission"].proxies + PRESETS[DEFAULT_PRESET].proxies)) == DEFAULT_PROXIES
    for preset in PRESETS.values():
        assert len(set(preset.proxies)) == len(preset.proxies) >= 2
        assert all(get_proxy(name).name == name for name in preset.proxies)
        assert preset.method in VOTE_METHODS and preset.description


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(UnknownPresetError, match="known presets: mission, azn, best"):
        get_preset("borda")
