"""NB201 networks: the benchmark's parameter counts and module names, forward passes, the pruned forward."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_CONV, ALL_NONE, DEAD_EDGE_CELLS, README_CELL

from search_spaces import nb201
from search_spaces.nb201.network import CellModule


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


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(
    ("arch", "num_classes", "published"),
    [(ALL_NONE, 10, 73_306), (ALL_CONV, 10, 1_531_546), (ALL_CONV, 100, 1_537_396)],
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
    keys = set(nb201.build_model(ALL_CONV).state_dict())
    for key in (
        "stem.0.weight",
        "cells.0.layers.5.op.1.weight",
        "cells.5.conv_a.op.1.weight",
        "cells.11.downsample.1.weight",
        "cells.16.layers.0.op.2.running_var",
        "lastact.0.bias",
        "classifier.bias",
    ):
        assert key in keys


def test_forward_shape_on_a_tiny_batch():
    torch.manual_seed(0)
    model = nb201.build_model(README_CELL, num_classes=7)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_float64_and_batch_size_one():
    torch.manual_seed(0)
    model = nb201.build_model(README_CELL).double()
    logits = model(torch.randn(1, 3, 32, 32, dtype=torch.float64))
    assert logits.dtype == torch.float64 and logits.shape == (1, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"channels": -4}, {"cells_per_stage": 1.5}])
def test_build_model_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        nb201.build_model(README_CELL, **bad)


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
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads, strict=False)]


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


@pytest.mark.parametrize("arch", [ALL_CONV, *DEAD_EDGE_CELLS])
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
        dot = sum((g * d).sum() for g, d in zip(grads, directions, strict=False) if g.requires_grad)
        results[label] = (logits.detach(), [g.detach() for g in grads], _gradients(dot, parameters))

    (logits, grads, hvps), (ref_logits, ref_grads, ref_hvps) = results["pruned"], results["full"]
    torch.testing.assert_close(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for name, grad, ref_grad, hvp, ref_hvp in zip(names, grads, ref_grads, hvps, ref_hvps, strict=False):
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
    cell = CellModule(nb201.parse(README_CELL), 4).double()
    inputs = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    snapshot = inputs.clone()
    cell(inputs)
    assert torch.equal(inputs, snapshot)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    model = nb201.build_model(README_CELL, channels=8, cells_per_stage=2).double()
    inputs = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    expected = model(inputs)
    on_device = model.cuda()(inputs.cuda())
    assert on_device.device.type == "cuda"
    torch.testing.assert_close(on_device.cpu(), expected, rtol=1e-9, atol=1e-9)


def test_parameter_counts_and_module_names_are_xautodls_tiny_network() -> None:
    """Against the reference implementation itself (xautodl's `TinyNetwork`, the "infer.tiny" model; a
    test-only dependency, see the Makefile): equal parameter counts, and its state dict loads strictly."""
    xautodl_models = pytest.importorskip("xautodl.models", reason="xautodl is a test dependency (see the Makefile)")
    from xautodl.config_utils import dict2config
    from xautodl.models.cell_searchs.genotypes import Structure

    for arch in [ALL_NONE, ALL_CONV, README_CELL, *nb201.all_archs()[::1601]]:
        config = {"name": "infer.tiny", "C": 8, "N": 2, "genotype": Structure.str2structure(arch), "num_classes": 10}
        reference = xautodl_models.get_cell_based_tiny_net(dict2config(config, None))
        ours = nb201.build_model(arch, 10, channels=8, cells_per_stage=2)
        assert parameter_count(ours) == parameter_count(reference), arch
        ours.load_state_dict(reference.state_dict(), strict=True)
