"""NAS-Bench-101: parsing and its errors, the benchmark's pruning and graph hash (against nasbench_pytorch, the
PyTorch port of google-research/nasbench), isomorphism, parameter counts and forward passes against the
port's network, seeded sampling, NASLib's encoding, and every proxy on a tiny instance."""

import itertools
import json
import random

import numpy as np
import pytest
import torch
from nasbench_pytorch.model import ModelSpec, Network
from nasbench_pytorch.model.graph_util import hash_module
from nasbench_pytorch.model.model import Placeholder
from torch import nn

from scorers import list_proxies, score_model_detailed
from scorers.calibration import load_calibration_batch
from search_spaces import nb101
from search_spaces.base import SPACES, SearchSpace, get_space

SPACE = get_space("nb101")
CONV3, CONV1, POOL = nb101.OPS
# The benchmark's Inception-like example: 2,694,282 trainable parameters in its notebook (NASBench.ipynb).
INCEPTION_LIKE = {
    "matrix": [
        [0, 1, 1, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": ["input", CONV1, CONV3, CONV3, CONV3, POOL, "output"],
}
TINY = {"stem_channels": 8, "stacks": 2, "cells_per_stack": 1}
LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def cell(matrix: list[list[int]], ops: list[str]) -> str:
    return json.dumps({"matrix": matrix, "ops": ["input", *ops, "output"]})


def reference_hash(text: str) -> str:
    parsed = nb101.parse(text)
    labels = [-1, *(list(nb101.OPS).index(op) for op in parsed.ops[1:-1]), -2]
    return hash_module(np.array(parsed.matrix), labels)


def reference_network(text: str, **sizes: int) -> Network:
    parsed = nb101.parse(text)
    return Network((np.array(parsed.matrix), list(parsed.ops)), **sizes)


def reference_parameter_count(network: Network) -> int:
    """The port's parameters less its `Placeholder` scalars, which stand in for absent ops and are not part of
    the benchmark's network (its `trainable_parameters` have no such entries)."""
    return sum(
        parameter.numel()
        for module in network.modules()
        if not isinstance(module, Placeholder)
        for parameter in module.parameters(recurse=False)
    )


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def relabellings(text: str) -> list[str]:
    """The isomorphic copies of a cell written differently: its interior nodes renumbered in every other
    order that keeps each edge pointing to a later node."""
    parsed = nb101.parse(text)
    size = parsed.num_nodes
    edges = [(source, target) for source in range(size) for target in range(size) if parsed.matrix[source][target]]
    copies = []
    for interior in itertools.permutations(range(1, size - 1)):
        order = (0, *interior, size - 1)  # order[new] = old
        new_of = {old: new for new, old in enumerate(order)}
        if all(new_of[source] < new_of[target] for source, target in edges):
            matrix = [[parsed.matrix[order[source]][order[target]] for target in range(size)] for source in range(size)]
            copy = SPACE.parse({"matrix": matrix, "ops": [parsed.ops[old] for old in order]})
            if copy != text:
                copies.append(copy)
    return copies


def reference_spec(matrix: list[list[int]], ops: list[str]) -> ModelSpec | None:
    """The port's pruned ModelSpec, or None for a cell the benchmark calls invalid: the port then fails to turn
    the None matrix its `_prune` leaves into a tensor."""
    try:
        return ModelSpec(np.array(matrix), list(ops))
    except RuntimeError as error:
        assert "NoneType" in str(error)
        return None


def test_registered_under_its_name_with_the_benchmarks_defaults():
    assert SPACES["nb101"] is SPACE and isinstance(SPACE, nb101.NB101Space)
    assert SPACE.size is None
    assert SPACE.model_options({}) == {"stem_channels": 128, "stacks": 3, "cells_per_stack": 3}
    assert SPACE.parse(SPACE.example) == SPACE.example == SPACE.parse(INCEPTION_LIKE)


def test_json_text_and_mapping_give_the_same_compact_normalised_text():
    text = SPACE.parse(json.dumps(INCEPTION_LIKE, indent=2))
    assert text == SPACE.parse(INCEPTION_LIKE)
    assert " " not in text and json.loads(text) == INCEPTION_LIKE
    assert SPACE.parse(text) == text


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("[[0, 1", r"^arch: not valid JSON"),
        ("x" * 10_001, r"^arch: 10001 characters"),
        ([[0, 1], [0, 0]], r"^arch: expected an object with keys 'matrix' and 'ops'"),
        ({"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "hash": "x"}, r"^hash: unexpected key"),
        ({"matrix": [[0, 1], [0, 0]]}, r"^ops: missing"),
        ({"matrix": [[0, 1], [0, 0]], "ops": "input,output"}, r"^ops: expected a list"),
        ({"matrix": [[0]], "ops": ["input"]}, r"^ops: 1 nodes; a NAS-Bench-101 cell has 2 to 7"),
        ({"matrix": [[0] * 8] * 8, "ops": ["input", *[CONV3] * 6, "output"]}, r"^ops: 8 nodes"),
        (cell([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["conv5x5"]), r"^ops\[1\]: unknown op 'conv5x5', expected one of "),
        ({"matrix": [[0, 1], [0, 0]], "ops": ["output", "output"]}, r"^ops\[0\]: the first node must be 'input'"),
        ({"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["input", CONV3, POOL]}, r"^ops\[2\]: the last node"),
        (cell([[0, 1], [0, 0]], [CONV3]), r"^matrix: 2 rows for 3 ops"),
        (cell([[0, 1, 0], [0, 0], [0, 0, 0]], [CONV3]), r"^matrix\[1\]: expected a row of 3 entries"),
        (cell([[0, 1, 0], [0, 0, 2], [0, 0, 0]], [CONV3]), r"^matrix\[1\]\[2\]: expected 0 or 1, got 2"),
        (cell([[0, 1, 0], [0, 0, True], [0, 0, 0]], [CONV3]), r"^matrix\[1\]\[2\]: expected 0 or 1, got True"),
        (cell([[0, 1, 0], [0, 0, 1], [0, 1, 0]], [CONV3]), r"^matrix\[2\]\[1\]: an edge must go to a later node"),
        (cell([[0, 1, 0], [0, 1, 1], [0, 0, 0]], [CONV3]), r"^matrix\[1\]\[1\]: an edge must go to a later node"),
        (cell([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [CONV3]), r"^matrix: the input \(node 0\) has no path to the output"),
        (
            cell([[int(t > s) for t in range(6)] for s in range(6)], [CONV3] * 4),
            r"^matrix: 15 edges after pruning .* at most 9",
        ),
    ],
)
def test_errors_name_the_offending_position(arch, message):
    with pytest.raises(ValueError, match=message):
        SPACE.parse(arch)


def test_pruning_drops_nodes_off_every_input_to_output_path():
    # Node 2 is a dead end (feeds nothing), node 3 is unreachable from the input: only 0 -> 1 -> 4 remains.
    matrix = [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    pruned = json.loads(SPACE.parse(cell(matrix, [CONV1, CONV3, POOL])))
    assert pruned == {"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["input", CONV1, "output"]}


def test_pruning_equals_the_benchmarks_model_spec_on_random_matrices():
    """400 random 7-node matrices, the benchmark's own random draw: the same kept cell, the same invalid ones
    (input cut off from output), and the 9-edge limit checked on the pruned cell as the benchmark's API does."""
    rng = random.Random(7)
    outcomes = {"kept": 0, "disconnected": 0, "too many edges": 0}
    for _ in range(400):
        matrix = [[int(t > s and rng.random() < 0.4) for t in range(7)] for s in range(7)]
        ops = ["input", *(rng.choice(nb101.OPS) for _ in range(5)), "output"]
        spec = reference_spec(matrix, ops)
        if spec is None:
            with pytest.raises(ValueError, match="no path"):
                SPACE.parse({"matrix": matrix, "ops": ops})
            outcomes["disconnected"] += 1
        elif int(spec.matrix.sum()) > nb101.MAX_EDGES:
            with pytest.raises(ValueError, match="edges after pruning"):
                SPACE.parse({"matrix": matrix, "ops": ops})
            outcomes["too many edges"] += 1
        else:
            expected = {"matrix": spec.matrix.tolist(), "ops": spec.ops}
            assert json.loads(SPACE.parse({"matrix": matrix, "ops": ops})) == expected
            outcomes["kept"] += 1
    assert min(outcomes.values()) >= 20, outcomes


def test_canonical_key_is_the_benchmarks_graph_hash():
    archs = [SPACE.example, *SPACE.sample(30, seed=11)]
    for arch in archs:
        assert SPACE.canonical_key(arch) == reference_hash(arch)


def test_isomorphic_cells_share_a_key_and_others_do_not():
    pairs = 0
    for arch in SPACE.sample(40, seed=5):
        for twin in relabellings(arch):
            assert SPACE.canonical_key(twin) == SPACE.canonical_key(arch) == reference_hash(twin)
            pairs += 1
    assert pairs >= 20
    # The benchmark's own test pair (graph_util_test: a diamond with its two branches swapped).
    diamond = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert SPACE.canonical_key(cell(diamond, [CONV1, POOL])) == SPACE.canonical_key(cell(diamond, [POOL, CONV1]))
    # Not isomorphic: the order of a chain, and a chain against the diamond.
    chain = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    keys = {SPACE.canonical_key(cell(chain, [CONV1, POOL])), SPACE.canonical_key(cell(chain, [POOL, CONV1]))}
    keys.add(SPACE.canonical_key(cell(diamond, [CONV1, POOL])))
    assert len(keys) == 3


@pytest.mark.parametrize(
    ("matrix", "in_out", "expected"),
    [  # google-research/nasbench, nasbench/tests/model_builder_test.py
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], (8, 16), [8, 16, 16, 16]),
        ([[0, 1], [0, 0]], (5, 1), [5, 1]),
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], (8, 15), [8, 8, 7, 15]),
        ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], (8, 8), [8, 3, 3, 2, 8]),
        ([[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], (8, 9), [8, 5, 5, 4, 9]),
        ([[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5], (8, 15), [8, 8, 7, 7, 15]),
    ],
)
def test_channel_split_matches_the_benchmarks_tests(matrix, in_out, expected):
    assert nb101.vertex_channels(*in_out, tuple(map(tuple, matrix))) == expected


def test_parameter_counts_equal_the_reference_network():
    assert parameter_count(SPACE.build_model(SPACE.example, 10)) == 2_694_282
    for arch in SPACE.sample(20, seed=0):
        assert parameter_count(SPACE.build_model(arch, 10)) == reference_parameter_count(reference_network(arch))
    arch = SPACE.sample(1, seed=1)[0]
    sizes = {"stem_channels": 64, "stacks": 2, "cells_per_stack": 4}
    reference = reference_network(arch, num_labels=100, stem_out_channels=64, num_stacks=2, num_modules_per_stack=4)
    assert parameter_count(SPACE.build_model(arch, 100, **sizes)) == reference_parameter_count(reference)


def test_forward_equals_the_reference_network_with_the_same_weights():
    """Copying every conv, BatchNorm and linear layer across (both build them in the same order) gives the
    same logits: same wiring, channel splits, truncations and concatenation order."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    for arch in [SPACE.example, *SPACE.sample(6, seed=2)]:
        ours = SPACE.build_model(arch, 10, stem_channels=16, stacks=2, cells_per_stack=2).eval()
        reference = reference_network(arch, stem_out_channels=16, num_stacks=2, num_modules_per_stack=2).eval()
        our_layers = [module for module in ours.modules() if isinstance(module, LAYERS)]
        reference_layers = [module for module in reference.modules() if isinstance(module, LAYERS)]
        assert [type(module) for module in our_layers] == [type(module) for module in reference_layers]
        for source, target in zip(our_layers, reference_layers, strict=True):
            target.load_state_dict(source.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(ours(images), reference(images), rtol=0, atol=1e-6)


def test_build_and_forward_shapes():
    torch.manual_seed(0)
    model = SPACE.build_model(SPACE.example, 7, **TINY)
    assert [name for name, _ in model.named_children()][:2] == ["stem", "cells"]
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    model64 = SPACE.build_model(SPACE.example, 10, **TINY).double()
    assert model64(torch.randn(1, 3, 16, 16, dtype=torch.float64)).shape == (1, 10)
    minimal = SPACE.build_model(cell([[0, 1], [0, 0]], []), 10, **TINY)  # input straight to output: a projection
    assert minimal(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stem_channels": 4}, "stem_channels must be an integer from 8 to 512"),
        ({"stacks": 0}, "stacks must be an integer from 1 to 4"),
        ({"cells_per_stack": 2.5}, "cells_per_stack must be an integer"),
        ({"channels": 16}, "unknown model option 'channels' for space nb101"),
    ],
)
def test_build_model_refuses_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        SPACE.build_model(SPACE.example, 10, **options)


def test_sample_is_seeded_valid_and_one_per_class():
    first = SPACE.sample(200, seed=0)
    assert first == SPACE.sample(200, seed=0) != SPACE.sample(200, seed=1)
    assert first[:50] == SPACE.sample(50, seed=0)
    assert len({SPACE.canonical_key(arch) for arch in first}) == 200
    for arch in first:
        assert SPACE.parse(arch) == arch
        parsed = nb101.parse(arch)
        assert parsed.num_nodes <= nb101.MAX_NODES and parsed.num_edges <= nb101.MAX_EDGES
    assert {nb101.parse(arch).num_nodes for arch in first} >= {3, 4, 5, 6, 7}
    assert SPACE.sample(0, seed=0) == []
    with pytest.raises(ValueError, match="from 0 to 423624"):
        SPACE.sample(nb101.UNIQUE_CELLS + 1, seed=0)


class OneCell(nb101.NB101Space):
    """The space with `arch` as its largest architecture, so that the generic `SearchSpace.network_size`
    counts that cell's network."""

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def largest_architecture(self) -> str:
        return self.arch


def test_network_size_takes_the_most_parameters_and_the_most_saved_activations():
    at_benchmark_size = SPACE.network_size(10, 32)
    assert at_benchmark_size.parameters == parameter_count(SPACE.build_model(SPACE.largest_architecture(), 10))
    assert at_benchmark_size.parameters == 49_979_274
    most_parameters_alone = SearchSpace.network_size(SPACE, 10, 32)
    assert at_benchmark_size.saved_floats_per_image > most_parameters_alone.saved_floats_per_image
    small = {"stem_channels": 8, "stacks": 2, "cells_per_stack": 1}
    bound = SPACE.network_size(10, 32, **small)
    for arch in [SPACE.example, *SPACE.sample(15, seed=9)]:
        counted = SearchSpace.network_size(OneCell(arch), 10, 32, **small)
        assert counted.parameters <= bound.parameters and counted.saved_floats_per_image <= bound.saved_floats_per_image


def test_naslib_encoding_is_the_flattened_matrix_then_op_indices():
    assert SPACE.naslib_encoding(cell([[0, 1], [0, 0]], [])) == "(0, 1, 0, 0, 0, 1)"
    chain = cell([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [CONV3, POOL])
    assert SPACE.naslib_encoding(chain) == "(0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 4, 2, 1)"


def test_every_registered_proxy_runs_on_a_tiny_network(one_torch_thread):
    batch = load_calibration_batch("cifar10", "synthetic", batch_size=8, seed=0)
    assert set(SPACE.unsupported_proxies) <= {info.name for info in list_proxies()}
    proxies = [info.name for info in list_proxies() if info.name not in SPACE.unsupported_proxies]
    for arch in (SPACE.example, cell([[0, 1], [0, 0]], [])):
        torch.manual_seed(0)
        results = score_model_detailed(SPACE.build_model(arch, 10, **TINY), batch.inputs, batch.targets, proxies)
        assert {name: result.error for name, result in results.items() if result.error} == {}
        assert all(np.isfinite(result.value) for result in results.values())
