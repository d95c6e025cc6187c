"""The NATS-Bench size space: parsing (errors name the position), enumeration, and the network against the
reference implementation, xautodl's `DynamicShapeTinyNet` ("infer.shape.tiny"; a test-only dependency,
installed with `pip install --no-deps xautodl==1.0.0`, see the Makefile): equal parameter counts on seeded
configurations, and, with xautodl's weights loaded into ours by name, equal logits."""

import random

import pytest
import torch

from search_spaces import get_space, nats_sss
from search_spaces.nats_sss import CHANNEL_CHOICES, FIXED_CELL

SPACE = get_space("nats_sss")
REFERENCE_SEED = 14


def xautodl_network(arch: str, num_classes: int) -> torch.nn.Module:
    """xautodl's own network for a configuration, built as NATS-Bench's API builds it."""
    xautodl_models = pytest.importorskip("xautodl.models", reason="xautodl is a test dependency (see the Makefile)")
    from xautodl.config_utils import dict2config

    config = {"name": "infer.shape.tiny", "channels": arch, "genotype": FIXED_CELL, "num_classes": num_classes}
    return xautodl_models.get_cell_based_tiny_net(dict2config(config, None))


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("8:16:24:32:40", "8:16:24:32:40"),
        ("  64:8:64:8:64\n", "64:8:64:8:64"),
        ("08:16:24:32:40", "8:16:24:32:40"),
        ([8, 16, 24, 32, 40], "8:16:24:32:40"),
        ((64, 64, 64, 64, 64), "64:64:64:64:64"),
    ],
)
def test_parse_normalises_and_is_idempotent(given: object, normalised: str) -> None:
    assert SPACE.parse(given) == normalised
    assert SPACE.parse(normalised) == normalised


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("8:16:24:32", "4 channel number(s); expected 5 joined by ':'"),
        ("8:16:24:32:40:48", "6 channel number(s); expected 5 joined by ':'"),
        ("", "1 channel number(s); expected 5"),
        ("8:16:20:32:40", "width 3 of 5 ('20' at column 6) is not a candidate width; expected one of 8, 16, 24"),
        (" 8:16:24:32:72", "width 5 of 5 ('72' at column 13) is not a candidate width"),
        ("8:16:x:32:40", "width 3 of 5 ('x' at column 6) is not a number"),
        ("8:16:+24:32:40", "width 3 of 5 ('+24' at column 6) is not a number"),
        ("8:16::32:40", "width 3 of 5 ('' at column 6) is not a number"),
        ("8:16:２４:32:40", "width 3 of 5 ('２４' at column 6) is not a number"),
        ([8, 16, 24, 32], "4 item(s); expected 5 channel numbers"),
        ([8, 16, 24, 32, True], "item 4 (True) is not one of 8, 16"),
        ([8, 16, "24", 32, 40], "item 2 ('24') is not one of"),
        (8.0, "cannot read a NATS-Bench size configuration from float 8.0"),
    ],
)
def test_parse_errors_name_the_position(given: object, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        SPACE.parse(given)
    assert problem in str(refused.value)


def test_a_huge_input_is_echoed_short() -> None:
    with pytest.raises(ValueError) as refused:
        SPACE.parse("8:" * 100_000)
    assert len(str(refused.value)) < 400


def test_the_space_enumerates_every_configuration_once_in_product_order() -> None:
    archs = SPACE.enumerate()
    assert archs is not None
    assert len(archs) == len(set(archs)) == SPACE.size == 8**5 == 32_768
    assert (archs[0], archs[1], archs[-1]) == ("8:8:8:8:8", "8:8:8:8:16", "64:64:64:64:64")
    assert all(SPACE.parse(arch) == arch for arch in archs[::997])
    assert CHANNEL_CHOICES == (8, 16, 24, 32, 40, 48, 56, 64)


def test_every_configuration_is_its_own_class() -> None:
    archs = SPACE.sample(200, 3)
    assert [SPACE.canonical_key(arch) for arch in archs] == archs
    assert SPACE.singleton_classes
    assert SPACE.canonical_key(" 8:16:24:32:40") == "8:16:24:32:40"


def test_the_sample_is_the_shared_seeded_draw() -> None:
    assert SPACE.sample(5, 7) == random.Random(7).sample(nats_sss.all_archs(), 5)


def test_parameter_counts_equal_xautodls_on_seeded_configurations() -> None:
    archs = [*SPACE.sample(22, REFERENCE_SEED), "8:8:8:8:8", "64:64:64:64:64"]
    for num_classes in (10, 100):
        for arch in archs:
            ours = parameter_count(SPACE.build_model(arch, num_classes))
            assert ours == parameter_count(xautodl_network(arch, num_classes)), (arch, num_classes)


@pytest.mark.parametrize(("arch", "image_size"), [("8:16:24:32:40", 32), ("64:8:40:16:56", 16), ("24:24:24:24:24", 32)])
def test_with_xautodls_weights_the_logits_are_xautodls(arch: str, image_size: int) -> None:
    """Module names are xautodl's, so its state dict loads as it is (strictly); eval mode, so BatchNorm uses
    the (randomised) running statistics and the comparison covers them too."""
    torch.manual_seed(0)
    reference = xautodl_network(arch, 10)
    with torch.no_grad():
        for buffer_name, buffer in reference.named_buffers():
            if buffer_name.endswith(("running_mean", "running_var")):
                buffer.uniform_(0.5, 1.5)
    ours = SPACE.build_model(arch, 10)
    ours.load_state_dict(reference.state_dict(), strict=True)
    inputs = torch.randn(3, 3, image_size, image_size)
    with torch.no_grad():
        _, expected = reference.eval()(inputs)
        assert torch.allclose(ours.eval()(inputs), expected, atol=1e-5)


def test_the_network_puts_out_each_layers_width() -> None:
    model = SPACE.build_model("8:16:24:32:40", 10)
    widths = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: widths.append(out.shape[1])) for layer in model.cells]
    model(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert widths == [8, 16, 24, 32, 40]
    assert model.classifier.in_features == 40


def test_the_space_has_no_model_options() -> None:
    assert SPACE.model_options({}) == {}
    with pytest.raises(ValueError, match="unknown model option 'channels' for space nats_sss; known: none"):
        SPACE.build_model("8:8:8:8:8", 10, channels=16)
