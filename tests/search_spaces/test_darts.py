"""DARTS / NAS-Bench-301: parsing JSON and DARTS text (never evaluated) and its errors, isomorphism keys,
parameter counts against DARTS' own NetworkCIFAR, forward shapes, seeded sampling, NASLib's compact encoding,
and every proxy on a tiny instance."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from scorers import list_proxies, score_model_detailed
from scorers.calibration import load_calibration_batch
from search_spaces import darts
from search_spaces.base import SPACES, SearchSpace, get_space

SPACE = get_space("darts")
TINY = {"channels": 4, "layers": 5}
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)
DARTS_V1_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)

REFERENCE_COUNTS = [
    ("0012132612241241/0415022002230243", 880_490, 162_970),
    ("0413102605360433/0512012406113040", 1_083_178, 183_738),
    ("0012152021362340/0411011604152030", 742_250, 134_330),
    ("0016061526311432/0515102204151120", 834_986, 145_818),
    ("0511021306310614/0015032000240115", 898_346, 156_986),
    ("0115042300110223/0413052312351535", 995_242, 182_906),
    ("0615022404230315/0512112405100422", 1_124_266, 195_578),
    ("0613152212230034/0111031503363645", 984_298, 174_330),
    ("0310031424360342/0016041501203240", 1_055_146, 176_378),
    ("0516012012350316/0012061214260621", 864_426, 154_906),
    ("0010041226303545/0216012301212246", 770_986, 133_818),
    ("0216002204122431/0315022103162340", 872_618, 161_082),
    ("0312031010321125/0016052100102333", 770_730, 133_178),
    ("0012041611320646/0615032305201041", 829_162, 149_594),
    ("0214042313253542/0515002210241426", 1_073_962, 188_890),
    ("0412102606200110/0616162113223444", 837_674, 162_074),
    ("0516052314343646/0616052124320326", 1_165_994, 208_250),
    ("0613102102150023/0316052513303343", 938_794, 173_146),
    ("0316002412202143/0014142520352646", 948_650, 173_434),
    ("0612042606132631/0615002304251140", 986_282, 175_834),
]
"""Parameter counts of DARTS' own network for the 20 genotypes `SPACE.sample(20, seed=0)` draws, at NAS-Bench-301's
size (32 channels, 8 cells) and at 16 channels, 6 cells, CIFAR-10.

How they were obtained: quark0/darts at commit f276dd346a09ae3160f8e3aca5c7b193fda1da37, cnn/model.py
`NetworkCIFAR(C, 10, layers, auxiliary=False, genotype)` with cnn/operations.py and cnn/genotypes.py as they are
(cnn/utils.py replaced by its `drop_path` alone, since the rest needs torchvision), counting
`sum(p.numel() for p in net.parameters())`. The reference is not a dependency: no maintained package on PyPI
carries that network without torchvision (xautodl's NASNetonCIFAR adds a final BatchNorm, darmo pulls torchvision
and timm). In the same run our networks had the reference's state-dict keys and shapes for all 20, and equal
eval-mode logits with the reference's weights loaded at 4 channels, 5 cells.

Each genotype is written as "normal/reduce", a cell as its 8 edges, an edge as two digits: the input node and
the operation's index in NASLib's order (`darts.OPS`).
"""


def from_digits(code: str) -> dict[str, list[list[object]]]:
    normal, reduce = code.split("/")
    return {
        cell_type: [[darts.OPS[int(digits[i + 1])], int(digits[i])] for i in range(0, 16, 2)]
        for cell_type, digits in (("normal", normal), ("reduce", reduce))
    }


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_registered_under_its_name_with_nas_bench_301_defaults():
    assert SPACES["darts"] is SPACE and isinstance(SPACE, darts.DartsSpace)
    assert SPACE.size is None
    assert SPACE.model_options({}) == {"channels": 32, "layers": 8}
    assert SPACE.example == darts.DARTS_V2.text == SPACE.parse(DARTS_V2_TEXT)


def test_json_mapping_and_darts_text_give_the_same_normalised_text():
    body = json.loads(SPACE.example)
    assert SPACE.parse(body) == SPACE.parse(json.dumps(body, indent=1)) == SPACE.example
    without_concat = {"normal": body["normal"], "reduce": body["reduce"]}
    assert SPACE.parse(without_concat) == SPACE.example
    assert SPACE.parse(DARTS_V2_TEXT.replace("range(2, 6)", "[2, 3, 4, 5]")) == SPACE.example
    assert SPACE.parse(f"  {DARTS_V2_TEXT}\n") == SPACE.example
    assert " " not in SPACE.example and SPACE.parse(SPACE.example) == SPACE.example
    assert len(SPACE.example) <= 512  # the service stores the normalised text in a 512-character column


@pytest.mark.parametrize(
    "text",
    [
        "Genotype(normal=__import__('os').system('touch /tmp/pwned'), reduce=[])",
        "Genotype(normal=[('sep_conv_3x3', 0)] * 8, reduce=[])",
        "Genotype(normal=[], normal_concat=range(0, 10**12), reduce=[])",
        "__import__('os').system('touch /tmp/pwned')",
        "Genotype(**{'normal': []})",
    ],
)
def test_darts_text_is_read_never_evaluated(text):
    with pytest.raises(ValueError, match=r"^(arch|normal|normal_concat): "):
        SPACE.parse(text)


def edges(cell_type: str, index: int, value: object) -> dict[str, object]:
    """DARTS-V2 with one edge replaced."""
    body = json.loads(SPACE.example)
    body[cell_type][index] = value
    return body


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (edges("normal", 3, ["sep_conv_3x3", 4]), r"^normal\[3\]\[1\]: input 4 is not an earlier node \(0\.\.2\)"),
        (edges("reduce", 7, ["max_pool_3x3", -1]), r"^reduce\[7\]\[1\]: input -1 is not an earlier node \(0\.\.4\)"),
        (edges("normal", 0, ["sep_conv_3x3", True]), r"^normal\[0\]\[1\]: input True is not an earlier node"),
        (edges("normal", 2, ["none", 0]), r"^normal\[2\]\[0\]: 'none' is not an operation of a final DARTS genotype"),
        (edges("reduce", 0, ["conv_7x1_1x7", 0]), r"^reduce\[0\]\[0\]: unknown operation 'conv_7x1_1x7', expected one"),
        (edges("normal", 1, ["sep_conv_3x3", 0]), r"^normal\[1\]\[1\]: node 2 already takes input 0 \(normal\[0\]\)"),
        (edges("normal", 4, "sep_conv_3x3"), r"^normal\[4\]: expected an \[operation, input\] pair"),
        ({"normal": json.loads(SPACE.example)["normal"][:7], "reduce": []}, r"^normal: 7 \(operation, input\) pairs"),
        ({"normal": "sep_conv_3x3", "reduce": []}, r"^normal: expected a list of 8"),
        ({"normal": json.loads(SPACE.example)["normal"]}, r"^reduce: missing"),
        ({**json.loads(SPACE.example), "normal_concat": [2, 3, 4]}, r"^normal_concat: expected \[2, 3, 4, 5\]"),
        ({**json.loads(SPACE.example), "steps": 4}, r"^steps: unexpected key"),
        ([["sep_conv_3x3", 0]], r"^arch: expected a genotype object"),
        ("{not json", r"^arch: neither JSON nor DARTS text"),
        ("x" * 10_001, r"^arch: 10001 characters"),
        ("Genotype(normal=[", r"^arch: not valid DARTS genotype text"),
        ("Genotype([], [2, 3, 4, 5], [], [2, 3, 4, 5])", r"^arch: write the Genotype's fields by name"),
        ("Genotype(normal=[], normal=[], reduce=[])", r"^normal: given twice"),
        (DARTS_V2_TEXT.replace("reduce_concat=range(2, 6)", "reduce_concat=range(2, 7)"), r"^reduce_concat: expected"),
    ],
)
def test_errors_name_the_offending_position(arch, message):
    with pytest.raises(ValueError, match=message):
        SPACE.parse(arch)


def test_swapping_a_nodes_two_inputs_keeps_the_class_and_the_network():
    body = json.loads(SPACE.example)
    swapped = json.loads(SPACE.example)
    swapped["normal"][2:4] = body["normal"][3], body["normal"][2]
    swapped["reduce"][6:8] = body["reduce"][7], body["reduce"][6]
    assert SPACE.parse(swapped) != SPACE.example
    assert SPACE.canonical_key(SPACE.parse(swapped)) == SPACE.canonical_key(SPACE.example)
    # Same network: our weights, with the swapped edges' modules exchanged, give the same logits.
    torch.manual_seed(0)
    original = SPACE.build_model(SPACE.example, 10, **TINY).eval()
    exchanged = SPACE.build_model(SPACE.parse(swapped), 10, **TINY).eval()
    exchange = {"normal": {2: 3, 3: 2}, "reduce": {6: 7, 7: 6}}
    state = {}
    for key, value in original.state_dict().items():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "_ops":
            cell_type = "reduce" if original.cells[int(parts[1])].reduction else "normal"
            parts[3] = str(exchange[cell_type].get(int(parts[3]), int(parts[3])))
        state[".".join(parts)] = value
    exchanged.load_state_dict(state)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exchanged(images), original(images))


def test_renumbering_independent_nodes_keeps_the_class():
    """Nodes 2 and 3 of this cell read only the cell inputs: numbering them the other way round (and pointing
    node 4 at the renamed node) is the same network with its output channels permuted."""
    cell = [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["dil_conv_5x5", 1]]
    cell += [["avg_pool_3x3", 2], ["sep_conv_5x5", 3], ["skip_connect", 0], ["sep_conv_3x3", 4]]
    renumbered = [cell[2], cell[3], cell[0], cell[1], ["sep_conv_5x5", 2], ["avg_pool_3x3", 3], *cell[6:]]
    reduce = json.loads(SPACE.example)["reduce"]
    first = SPACE.parse({"normal": cell, "reduce": reduce})
    second = SPACE.parse({"normal": renumbered, "reduce": reduce})
    assert first != second and SPACE.canonical_key(first) == SPACE.canonical_key(second)


def test_different_genotypes_get_different_keys():
    body = json.loads(SPACE.example)
    other_op = edges("normal", 7, ["dil_conv_5x5", 2])
    other_input = edges("normal", 7, ["dil_conv_3x3", 4])
    # Nodes 2 and 3 of DARTS-V2's normal cell are built alike, so reading node 3 instead of 2 is the same network.
    twin_input = edges("normal", 7, ["dil_conv_3x3", 3])
    assert SPACE.canonical_key(SPACE.parse(twin_input)) == SPACE.canonical_key(SPACE.example)
    cells_exchanged = {"normal": body["reduce"], "reduce": body["normal"]}
    keys = {SPACE.canonical_key(SPACE.parse(arch)) for arch in (body, other_op, other_input, cells_exchanged)}
    assert len(keys) == 4
    for arch in SPACE.sample(30, seed=4):
        key = SPACE.canonical_key(arch)
        assert SPACE.parse(key) == key == SPACE.canonical_key(key)


def test_parameter_counts_equal_darts_network_cifar():
    assert parameter_count(SPACE.build_model(SPACE.example, 10, channels=36, layers=20)) == 3_349_342
    assert parameter_count(SPACE.build_model(SPACE.parse(DARTS_V1_TEXT), 10, channels=36, layers=20)) == 3_169_414
    assert parameter_count(SPACE.build_model(SPACE.example, 100, channels=36, layers=20)) == 3_401_272
    for code, at_32_8, at_16_6 in REFERENCE_COUNTS:
        arch = SPACE.parse(from_digits(code))
        assert parameter_count(SPACE.build_model(arch, 10)) == at_32_8
        assert parameter_count(SPACE.build_model(arch, 10, channels=16, layers=6)) == at_16_6


def test_state_dict_uses_darts_module_names():
    keys = set(SPACE.build_model(SPACE.example, 10).state_dict())
    for key in (
        "stem.0.weight",
        "cells.0.preprocess0.op.1.weight",
        "cells.0._ops.0.op.5.weight",
        "cells.0._ops.7.op.3.running_var",
        "cells.3.preprocess0.conv_2.weight",
        "classifier.bias",
    ):
        assert key in keys


def test_reduction_cells_and_forward_shapes():
    assert darts.reduction_layers(8) == {2, 5} and darts.reduction_layers(20) == {6, 13}
    torch.manual_seed(0)
    model = SPACE.build_model(SPACE.example, 7, **TINY)
    assert [cell.reduction for cell in model.cells] == [False, True, False, True, False]
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    assert model.classifier.in_features == 4 * 4 * TINY["channels"]
    smallest = SPACE.build_model(SPACE.example, 10, channels=4, layers=3).double()
    assert smallest(torch.randn(1, 3, 16, 16, dtype=torch.float64)).shape == (1, 10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"channels": 2}, "channels must be an integer from 4 to 128"),
        ({"layers": 31}, "layers must be an integer from 3 to 30"),
        ({"layers": True}, "layers must be an integer"),
        ({"stem_channels": 16}, "unknown model option 'stem_channels' for space darts"),
    ],
)
def test_build_model_refuses_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        SPACE.build_model(SPACE.example, 10, **options)


def test_sample_is_seeded_valid_and_one_per_class():
    first = SPACE.sample(100, seed=0)
    assert first == SPACE.sample(100, seed=0) != SPACE.sample(100, seed=1)
    assert first[:20] == [SPACE.parse(from_digits(code)) for code, _, _ in REFERENCE_COUNTS]
    assert len({SPACE.canonical_key(arch) for arch in first}) == 100
    for arch in first:
        assert SPACE.parse(arch) == arch
        for cell in darts.parse(arch).normal, darts.parse(arch).reduce:
            assert all(cell[i][1] < cell[i + 1][1] for i in range(0, 8, 2))
    assert SPACE.sample(0, seed=3) == []


class OneGenotype(darts.DartsSpace):
    """The space with `arch` as its largest architecture, so that the generic `SearchSpace.network_size`
    counts that genotype's network."""

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def largest_architecture(self) -> str:
        return self.arch


def test_the_largest_genotype_bounds_parameters_and_saved_activations():
    bound = SPACE.network_size(10, 32, channels=4, layers=3)
    assert bound.parameters == parameter_count(
        SPACE.build_model(SPACE.largest_architecture(), 10, channels=4, layers=3)
    )
    # The same edges with later nodes reading intermediate nodes: reduction edges from them work at half resolution.
    later_inputs = from_digits("0414142424343444/0414142424343444")
    for arch in [SPACE.parse(later_inputs), SPACE.example, *SPACE.sample(4, seed=6)]:
        counted = SearchSpace.network_size(OneGenotype(arch), 10, 32, channels=4, layers=3)
        assert counted.parameters <= bound.parameters and counted.saved_floats_per_image < bound.saved_floats_per_image


def test_naslib_encoding_is_the_compact_form():
    assert SPACE.naslib_encoding(SPACE.example) == (
        "(((0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)), "
        "((0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)))"
    )


def test_every_registered_proxy_runs_on_a_tiny_network(one_torch_thread):
    batch = load_calibration_batch("cifar10", "synthetic", batch_size=8, seed=0)
    assert set(SPACE.unsupported_proxies) <= {info.name for info in list_proxies()}
    proxies = [info.name for info in list_proxies() if info.name not in SPACE.unsupported_proxies]
    torch.manual_seed(0)
    model = SPACE.build_model(SPACE.example, 10, channels=4, layers=3)
    results = score_model_detailed(model, batch.inputs, batch.targets, proxies)
    assert {name: result.error for name, result in results.items() if result.error} == {}
    assert all(np.isfinite(result.value) for result in results.values())
