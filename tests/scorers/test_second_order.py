"""The faster scoring layers: the exact 3×3 average pool, and the double-backward layers used for
Hessian-vector products (GraSP)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_CONV, MIXED_CELL, scored_layers, small_model
from torch import nn

from scorers.second_order import fast_layers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hessian_products(model: nn.Module, inputs, targets, along: str) -> list[torch.Tensor]:
    """H·v for v the loss gradient ("gradient") or the weights themselves ("weights")."""
    weights = [m.weight for m in scored_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), targets), weights, create_graph=True)
    vector = [g.detach() for g in grads] if along == "gradient" else [w.detach() for w in weights]
    return list(torch.autograd.grad(grads, weights, grad_outputs=vector))


@pytest.mark.parametrize("along", ["gradient", "weights"])
@pytest.mark.parametrize("arch", [ALL_CONV, MIXED_CELL])
def test_fast_double_backward_equals_autograd_in_float64(arch, along, synthetic_batch):
    model = small_model(arch).double().train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(False)
            module.bias.requires_grad_(False)
    inputs, targets = synthetic_batch[0].double(), synthetic_batch[1]
    expected = _hessian_products(model, inputs, targets, along)
    with fast_layers(model, second_order=True):
        assert "_Conv2d" in model.stem[0](inputs).grad_fn.name()
        fast = _hessian_products(model, inputs, targets, along)
    assert not any("forward" in m.__dict__ for m in model.modules())
    for ours, reference in zip(fast, expected, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "groups", "affine"), [(1, 1, 1, 1, True), (2, 0, 1, 2, False), (1, 2, 2, 2, True)]
)
def test_fast_layers_pass_gradgradcheck(stride, padding, dilation, groups, affine):
    torch.manual_seed(0)
    layers = nn.Sequential(
        nn.Conv2d(4, 4, 3, stride, padding, dilation, groups, bias=True),
        nn.BatchNorm2d(4, affine=affine),
        nn.ReLU(),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.Conv2d(4, 2, 1),
    ).double()
    buffers = dict(layers.named_buffers())
    frozen = {name: p.detach() for name, p in layers.named_parameters() if name.startswith("1.")}
    names = [name for name, _ in layers.named_parameters() if not name.startswith("1.")]

    def network(inputs, *params):
        return torch.func.functional_call(
            layers, ({**frozen, **dict(zip(names, params, strict=False))}, buffers), (inputs,)
        )

    inputs = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for name, p in layers.named_parameters() if name in names]
    with fast_layers(layers, second_order=True):
        assert "_Conv2d" in layers[0](inputs).grad_fn.name()
        assert "_AvgPool3x3" in layers[3](inputs).grad_fn.name()
        batchnorm_state = {name.split(".", 1)[1]: p for name, p in frozen.items()}
        assert "_BatchNorm2d" in torch.func.functional_call(layers[1], batchnorm_state, (inputs,)).grad_fn.name()
        assert torch.autograd.gradgradcheck(network, (inputs, *params))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(64, 16, 32, 32), (8, 64, 8, 8), (3, 5, 7, 9), (2, 3, 1, 6), (1, 2, 1, 1)])
def test_the_average_pool_is_atens_bit_for_bit(shape, dtype, memory_format):
    """Forward and backward, on values spread over many magnitudes so that the order of the sums shows."""
    generator = torch.Generator().manual_seed(sum(shape))
    values = torch.randn(shape, generator=generator, dtype=dtype)
    values *= torch.rand(shape, generator=generator, dtype=dtype).pow(8) * 1e4
    values = values.contiguous(memory_format=memory_format)
    pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    expected_inputs = values.clone().requires_grad_()
    expected = pool(expected_inputs)
    (expected_gradient,) = torch.autograd.grad(expected, expected_inputs, values)
    inputs = values.clone().requires_grad_()
    with fast_layers(pool, second_order=False):
        output = pool(inputs)
        assert "_AvgPool3x3" in output.grad_fn.name()
        (gradient,) = torch.autograd.grad(output, inputs, values)
    assert torch.equal(output, expected) and torch.equal(gradient, expected_gradient)
    assert "forward" not in pool.__dict__


def test_only_the_layers_covered_exactly_are_swapped():
    model = nn.Sequential(
        nn.AvgPool2d(3, stride=1, padding=1),  # counts the padding
        nn.AvgPool2d(2, stride=2),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.Conv2d(2, 2, 3, padding="same"),
        nn.Conv2d(2, 2, 3, padding=1),
    )
    inputs = torch.randn(2, 2, 6, 6, requires_grad=True)
    with fast_layers(model, second_order=False):
        assert ["forward" in m.__dict__ for m in model] == [False, False, True, False, False]
        assert model(inputs).grad_fn.name().startswith("Convolution")
    with fast_layers(model, second_order=True):
        assert ["forward" in m.__dict__ for m in model] == [False, False, True, False, True]
        assert torch.equal(model[0](inputs), F.avg_pool2d(inputs, 3, 1, 1))
