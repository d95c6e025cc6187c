"""The NAS-Bench-201 search space: parsing, enumeration, isomorphism keys and the benchmark's network,
checked against the benchmark's own strings, counts and parameter sizes, and against a reference forward
that evaluates every edge."""

import csv
import itertools
import random
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from search_spaces import SPACES, nb201
from search_spaces.nb201.network import CellModule

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
MIXED = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MIXED_OPS = ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")

# Cells whose forward prunes edges, with the edges that stay live (indices into EDGES) worked out by hand.
DEAD_EDGE_CELLS = {
    # Nodes 1 and 2 never reach node 3: only the skip 3<-0 is live.
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|": (3,),
    # Node 1 is always zero, so 2<-1 and 3<-1 are dead although they carry convolutions.
    "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|": (1, 3, 5),
    # Node 2 is always zero: 3<-2 is dead; node 1 feeds node 3 through a convolution.
    "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|": (0, 3, 4),
    # Node 3 receives nothing (every input is `none`): the cell outputs zeros.
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|": (),
    # Node 3 is fed only by always-zero nodes: nothing is live.
    "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|": (),
}


PRIME = (1 << 61) - 1


def functional_fingerprint(ops: tuple[str, ...], points: list[int], coefficients: dict[str, tuple[int, ...]]) -> tuple:
    """The cell as an exact function on integers mod a prime: each parametric op is a random cubic with no
    constant term (so it maps zero to zero), `skip_connect` is the identity and `none` is zero. Two cells
    that are the same network get equal fingerprints; different ones differ with overwhelming probability."""

    def apply(op: str, value: int) -> int:
        a, b, c = coefficients[op]
        return (a * value**3 + b * value**2 + c * value) % PRIME

    fingerprint = []
    for point in points:
        values = [point]
        for node in (1, 2, 3):
            total = 0
            for (target, source), op in zip(nb201.EDGES, ops):
                if target == node and op != "none":
                    total += values[source] if op == "skip_connect" else apply(op, values[source])
            values.append(total % PRIME)
        fingerprint.append(values[3])
    return tuple(fingerprint)


def reference_cell_forward(cell: CellModule, inputs: torch.Tensor) -> torch.Tensor:
    """Evaluate all six edges, `none` included, and sum them in plain Python: the unpruned cell."""
    values = [inputs]
    for node in (1, 2, 3):
        edges = [(index, source) for index, (target, source) in enumerate(nb201.EDGES) if target == node]
        values.append(sum(cell.layers[index](values[source]) for index, source in edges))
    return values[3]


def reference_forward(model: nb201.NB201Network, inputs: torch.Tensor) -> torch.Tensor:
    features = model.stem(inputs)
    for block in model.cells:
        features = reference_cell_forward(block, features) if isinstance(block, CellModule) else block(features)
    return model.classifier(model.global_pooling(model.lastact(features)).flatten(1))


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These tensors are tiny: one thread is as fast and avoids thread contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# ---------------------------------------------------------------------------------------------- parsing


def test_space_is_registered_by_name():
    assert SPACES["nb201"] is nb201
    assert nb201.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def test_string_and_list_forms_parse_to_the_same_cell():
    from_string = nb201.parse(MIXED)
    assert from_string.ops == MIXED_OPS
    assert nb201.parse(list(MIXED_OPS)) == from_string
    assert nb201.parse(MIXED_OPS) == from_string
    assert nb201.parse(from_string) is from_string
    assert from_string.arch_str == MIXED and str(from_string) == MIXED
    assert nb201.parse(f"  {MIXED}\n") == from_string
    assert isinstance(nb201.parse(list(MIXED_OPS)).ops, tuple)
    assert hash(nb201.parse(list(MIXED_OPS))) == hash(from_string)


def test_cells_are_frozen():
    cell = nb201.parse(MIXED)
    with pytest.raises(AttributeError):
        cell.ops = MIXED_OPS  # type: ignore[misc]


def test_every_string_round_trips_through_both_forms():
    for arch in nb201.all_archs():
        cell = nb201.parse(arch)
        assert cell.arch_str == arch
        assert nb201.parse(list(cell.ops)).arch_str == arch


def _names_column_of(message: str, text: str, fragment: str) -> bool:
    """Whether `message` gives the 1-based column where `fragment` (unique in `text`) starts."""
    assert text.count(fragment) == 1, "test inputs must make the bad token unique"
    return re.search(rf"\bcolumn {text.index(fragment) + 1}\b", message) is not None


BAD_STRINGS = [
    # (input, the bad token the message must quote, what it must say is expected)
    (MIXED.replace("avg_pool_3x3~1", "max_pool_3x3~1"), "'max_pool_3x3~1'", "nor_conv_3x3"),
    (MIXED.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "'avg_pool_3x3~0'", "'~1'"),
    (MIXED.replace("skip_connect~2", "skip_connect~7"), "'skip_connect~7'", "'~2'"),
    (MIXED.replace("|nor_conv_3x3~0|avg_pool_3x3~1|", "|avg_pool_3x3~1|"), "'|avg_pool_3x3~1|'", "'|op~0|op~1|'"),
    (MIXED.replace("skip_connect~2", "skip_connect2"), "'skip_connect2'", "'operation~2'"),
    (MIXED + "+|none~0|", "'|none~0|'", "3 node groups"),
    ("hello world", "'hello world'", "'|op~0|'"),
    ("|nor_conv_3x3~0|+nor_conv_3x3~0|nor_conv_1x1~1|", "'nor_conv_3x3~0|nor_conv_1x1~1|'", "'|op~0|op~1|'"),
]


@pytest.mark.parametrize(("text", "bad_token", "expected"), BAD_STRINGS)
def test_bad_strings_name_the_token_its_column_and_what_is_expected(text, bad_token, expected):
    with pytest.raises(ValueError) as raised:
        nb201.parse(text)
    message = str(raised.value)
    assert bad_token in message
    assert _names_column_of(message, text, bad_token.strip("'"))
    assert "expected" in message and expected in message


def test_a_truncated_string_says_which_node_group_is_missing():
    text = "|none~0|+|none~0|none~1|"
    with pytest.raises(ValueError, match=r"node group 3 is missing .*expected 3 node groups"):
        nb201.parse(text)


@pytest.mark.parametrize(
    ("ops", "fragments"),
    [
        (["none"] * 5, ["item 5", "edge 3<-2", "missing", "expected 6 operations"]),
        (["none"] * 7, ["item 6", "one too many", "expected 6 operations"]),
        (["none", "conv3x3", "none", "none", "none", "none"], ["item 1", "'conv3x3'", "edge 2<-0", "nor_conv_3x3"]),
        (["none", "none", "none", 3, "none", "none"], ["item 3", "(3,", "edge 3<-0", "expected one of"]),
    ],
)
def test_bad_lists_name_the_item_its_edge_and_what_is_expected(ops, fragments):
    with pytest.raises(ValueError) as raised:
        nb201.parse(ops)
    for fragment in fragments:
        assert fragment in str(raised.value)


@pytest.mark.parametrize("garbage", [42, None, b"|none~0|", {"ops": MIXED_OPS}, 3.5])
def test_other_types_are_rejected_with_a_value_error_naming_them(garbage):
    with pytest.raises(ValueError) as raised:
        nb201.parse(garbage)
    message = str(raised.value)
    assert type(garbage).__name__ in message and repr(garbage)[:20] in message
    assert "expected a cell string" in message


def test_direct_cell_construction_is_validated():
    with pytest.raises(ValueError, match="item 0"):
        nb201.Cell(("sep_conv_3x3",) + MIXED_OPS[1:])


def test_error_messages_stay_short_for_huge_inputs():
    with pytest.raises(ValueError) as raised:
        nb201.parse("|" + "x" * 100_000)
    assert len(str(raised.value)) < 1_000


# ------------------------------------------------------------------------------------------ enumeration


def test_all_archs_is_the_whole_space_in_a_fixed_order():
    archs = nb201.all_archs()
    assert len(archs) == 5**6 == 15_625
    assert len(set(archs)) == len(archs)
    assert archs == nb201.all_archs()
    assert archs[0] == ALL_NONE
    archs.append("mutated")
    assert len(nb201.all_archs()) == 15_625
    assert {nb201.parse(arch).ops for arch in archs[:-1]} == set(itertools.product(nb201.OPS, repeat=6))


def test_all_archs_are_exactly_the_benchmarks_strings(nb201_csv: Path):
    with nb201_csv.open(newline="") as handle:
        benchmark_archs = [row["arch"] for row in csv.DictReader(handle)]
    assert len(benchmark_archs) == 15_625
    assert set(benchmark_archs) == set(nb201.all_archs())


# ------------------------------------------------------------------------------------------ isomorphism


def test_canonical_keys_split_the_space_into_the_benchmarks_6466_classes():
    assert len({nb201.canonical_key(ops) for ops in itertools.product(nb201.OPS, repeat=6)}) == 6_466


def test_cells_sharing_a_key_compute_the_same_function():
    """The converse does not hold: the benchmark's rule keeps zero terms in sums, so a few equal functions
    (4,930 distinct ones over the space) are split across several of its classes."""
    rng = random.Random(201)
    coefficients = {op: tuple(rng.randrange(1, PRIME) for _ in range(3)) for op in nb201.OPS[2:]}
    points = [rng.randrange(1, PRIME) for _ in range(2)]
    key_to_fingerprint: dict[str, tuple] = {}
    fingerprints: set[tuple] = set()
    for ops in itertools.product(nb201.OPS, repeat=6):
        key = nb201.canonical_key(ops)
        fingerprint = functional_fingerprint(ops, points, coefficients)
        assert key_to_fingerprint.setdefault(key, fingerprint) == fingerprint, ops
        fingerprints.add(fingerprint)
    assert len(fingerprints) == 4_930


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # Differ only in edges that cannot reach node 3.
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|",
            "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
        ),
        # conv1(x) + avg(conv3(x)): node 2's edges change but node 2 never reaches node 3.
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
        ),
        # conv3(x) + conv1(x) reached directly or through a skip to node 1.
        (
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|",
            "|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
        ),
        # Edges out of an always-zero node are zero, whatever they carry.
        (
            "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
            "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
        ),
        # A cell whose output is always zero is the all-`none` cell.
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", ALL_NONE),
    ],
)
def test_isomorphic_cells_share_a_key(first, second):
    assert first != second
    assert nb201.canonical_key(first) == nb201.canonical_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # skip vs convolution on a live edge.
        (
            "|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
        ),
        # Sums keep multiplicity: conv3(x) + conv3(x) is not conv3(x).
        (
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
        ),
        # Order of composition matters: avg(conv3(x)) vs conv3(avg(x)).
        (
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
            "|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
        ),
        # 1x1 vs 3x3 convolution.
        (ALL_CONV3, ALL_CONV3.replace("nor_conv_3x3~2", "nor_conv_1x1~2")),
    ],
)
def test_different_networks_get_different_keys(first, second):
    assert nb201.canonical_key(first) != nb201.canonical_key(second)


def test_canonical_key_accepts_every_form():
    assert nb201.canonical_key(MIXED) == nb201.canonical_key(list(MIXED_OPS)) == nb201.canonical_key(nb201.parse(MIXED))
    with pytest.raises(ValueError, match="max_pool_3x3"):
        nb201.canonical_key(MIXED.replace("avg_pool_3x3", "max_pool_3x3"))


@pytest.mark.parametrize(("arch", "live"), DEAD_EDGE_CELLS.items())
def test_live_edges_by_hand(arch, live):
    assert nb201.live_edges(arch) == live


def test_dead_edges_never_change_the_function():
    """Replacing every dead edge by `none` leaves the network's function unchanged: why the forward may
    skip them."""
    rng = random.Random(7)
    coefficients = {op: tuple(rng.randrange(1, PRIME) for _ in range(3)) for op in nb201.OPS[2:]}
    points = [rng.randrange(1, PRIME) for _ in range(2)]
    for ops in itertools.product(nb201.OPS, repeat=6):
        live = nb201.live_edges(ops)
        pruned = tuple(op if index in live else "none" for index, op in enumerate(ops))
        assert functional_fingerprint(pruned, points, coefficients) == functional_fingerprint(ops, points, coefficients)


# ---------------------------------------------------------------------------------------------- network


@pytest.mark.parametrize(
    ("arch", "num_classes", "published"),
    [(ALL_NONE, 10, 73_306), (ALL_CONV3, 10, 1_531_546), (ALL_CONV3, 100, 1_537_396)],
)
def test_parameter_counts_match_the_benchmarks_published_sizes(arch, num_classes, published):
    assert parameter_count(nb201.build_model(arch, num_classes)) == published


def test_dead_edges_keep_their_parameters():
    """Three 3x3-conv edges that never reach node 3 still count: 5 cells per stage, each edge a 3x3 conv
    (9 w^2 weights) and a BatchNorm (2 w) at widths 16, 32 and 64, on top of the all-`none` network."""
    all_dead = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    per_conv3_edge = 5 * sum(9 * width * width + 2 * width for width in (16, 32, 64))
    assert parameter_count(nb201.build_model(all_dead)) == 73_306 + 3 * per_conv3_edge


def test_state_dict_uses_the_benchmarks_module_names():
    keys = set(nb201.build_model(ALL_CONV3).state_dict())
    for key in ("stem.0.weight", "cells.0.layers.5.op.1.weight", "cells.5.conv_a.op.1.weight",
                "cells.11.downsample.1.weight", "cells.16.layers.0.op.2.running_var", "lastact.0.bias",
                "classifier.bias"):
        assert key in keys


def test_forward_shape_on_a_tiny_batch():
    torch.manual_seed(0)
    model = nb201.build_model(MIXED, num_classes=7)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_float64_and_batch_size_one():
    torch.manual_seed(0)
    model = nb201.build_model(MIXED).double()
    logits = model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert logits.dtype == torch.float64 and logits.shape == (1, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"channels": -4}, {"cells_per_stage": 1.5}])
def test_build_model_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        nb201.build_model(MIXED, **bad)


@pytest.mark.parametrize(("arch", "live"), DEAD_EDGE_CELLS.items())
def test_forward_calls_only_live_non_skip_edges(arch, live):
    torch.manual_seed(0)
    model = nb201.build_model(arch, channels=4, cells_per_stage=1)
    cell = model.cells[0]
    called = []
    for index, layer in enumerate(cell.layers):
        layer.register_forward_hook(lambda module, args, output, index=index: called.append(index))
    model(torch.randn(2, 3, 16, 16))
    expected = [index for index in live if cell.arch.ops[index] != "skip_connect"]
    assert called == expected


def test_a_cell_with_no_live_input_outputs_zeros():
    cell = CellModule(nb201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"), 4)
    inputs = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    outputs = cell.double()(inputs)
    assert outputs.shape == inputs.shape and outputs.dtype == torch.float64
    assert not outputs.any()


def _gradients(outputs, parameters, **kwargs):
    grads = torch.autograd.grad(outputs, parameters, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads)]


def _compared_parameters(model: nb201.NB201Network) -> tuple[list[str], list[torch.nn.Parameter]]:
    """Every parameter except the BatchNorm ones of dead edges: an edge fed by an always-zero node outputs
    its BatchNorm bias (zero at initialisation) in the full forward, so that bias alone gets a gradient
    there. Dead edges' conv weights, which the proxies read, are compared."""
    skipped = set()
    for position, block in enumerate(model.cells):
        if isinstance(block, CellModule):
            live = nb201.live_edges(block.arch)
            skipped |= {f"cells.{position}.layers.{index}.op.2." for index in range(6) if index not in live}
    names, parameters = [], []
    for name, parameter in model.named_parameters():
        if not any(name.startswith(prefix) for prefix in skipped):
            names.append(name)
            parameters.append(parameter)
    return names, parameters


@pytest.mark.parametrize("arch", [ALL_CONV3, *DEAD_EDGE_CELLS])
def test_pruned_forward_matches_the_full_forward_outputs_gradients_and_hessian_products(arch):
    torch.manual_seed(0)
    model = nb201.build_model(arch, channels=4, cells_per_stage=2).double()
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(4, 3, 16, 16, dtype=torch.float64, generator=generator)
    targets = torch.randint(0, 10, (4,), generator=generator)
    names, parameters = _compared_parameters(model)
    directions = [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in parameters]

    results = {}
    for label, forward in (("pruned", model), ("full", lambda x: reference_forward(model, x))):
        logits = forward(inputs)
        grads = _gradients(F.cross_entropy(logits, targets), parameters, create_graph=True)
        dot = sum((g * d).sum() for g, d in zip(grads, directions) if g.requires_grad)
        results[label] = (logits.detach(), [g.detach() for g in grads], _gradients(dot, parameters))

    (logits, grads, hvps), (ref_logits, ref_grads, ref_hvps) = results["pruned"], results["full"]
    torch.testing.assert_close(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for name, grad, ref_grad, hvp, ref_hvp in zip(names, grads, ref_grads, hvps, ref_hvps):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")
        torch.testing.assert_close(hvp, ref_hvp, rtol=1e-10, atol=1e-12, msg=f"Hessian product of {name}")
    assert any(grad.abs().sum() > 0 for grad in grads)


def test_pruned_forward_matches_the_full_forward_in_eval_mode():
    torch.manual_seed(0)
    arch = next(iter(DEAD_EDGE_CELLS))
    model = nb201.build_model(arch, channels=4, cells_per_stage=1).double().eval()
    inputs = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(inputs), reference_forward(model, inputs), rtol=1e-12, atol=1e-12)


def test_the_cell_does_not_modify_its_input():
    cell = CellModule(nb201.parse(MIXED), 4).double()
    inputs = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    snapshot = inputs.clone()
    cell(inputs)
    assert torch.equal(inputs, snapshot)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    model = nb201.build_model(MIXED, channels=8, cells_per_stage=2).double()
    inputs = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = model(inputs)
    on_device = model.cuda()(inputs.cuda())
    assert on_device.device.type == "cuda"
    torch.testing.assert_close(on_device.cpu(), expected, rtol=1e-9, atol=1e-9)

