"""The fast double-backward layers used for Hessian-vector products (GraSP)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_CONV, scored_layers, small_model
from torch import nn

from scorers.second_order import fast_second_order

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hessian_products(model: nn.Module, inputs, targets) -> list[torch.Tensor]:
    weights = [m.weight for m in scored_layers(model)]
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), targets), weights, create_graph=True)
    return list(torch.autograd.grad(grads, weights, grad_outputs=[g.detach() for g in grads]))


def test_fast_double_backward_equals_autograd_in_float64(synthetic_batch):
    model = small_model(ALL_CONV).double().train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.requires_grad_(False)
            module.bias.requires_grad_(False)
    inputs, targets = synthetic_batch[0].double(), synthetic_batch[1]
    expected = _hessian_products(model, inputs, targets)
    with fast_second_order(model):
        assert "_Conv2d" in model.stem[0](inputs).grad_fn.name()
        fast = _hessian_products(model, inputs, targets)
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
    with fast_second_order(layers):
        assert "_Conv2d" in layers[0](inputs).grad_fn.name()
        batchnorm_state = {name.split(".", 1)[1]: p for name, p in frozen.items()}
        assert "_BatchNorm2d" in torch.func.functional_call(layers[1], batchnorm_state, (inputs,)).grad_fn.name()
        assert torch.autograd.gradgradcheck(network, (inputs, *params))
