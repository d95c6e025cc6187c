"""Zen-NAS, MeCo, SWAP and AZ-NAS proxies on real (small) NAS-Bench-201 networks: metadata, invariants,
shared passes, and agreement with independent direct computations and hand-worked values."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ALL_CONV, ALL_NONE, MIXED_CELL, relative_error, tiny_model
from torch import nn

from scorers import get_proxy, list_proxies, score_model, score_model_detailed
from scorers.calibration import load_calibration_batch

AZ = ("az_expressivity", "az_progressivity", "az_trainability")
OURS = ("zen", "meco", "swap", *AZ, "az_complexity")
DATA_FREE = ("zen", *AZ, "az_complexity")
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
CELLS = (ALL_CONV, MIXED_CELL)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch():
    synthetic = load_calibration_batch("cifar10", "synthetic", batch_size=20, seed=0)
    return synthetic.inputs, synthetic.targets


# Independent direct computations: deep copies, the references' own init calls, explicit forwards.


def reinitialise(net: nn.Module, generator: torch.Generator, init) -> nn.Module:
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                init(module.weight, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return net


def cell_outputs(net: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    features = [net.stem(images)]
    for block in net.cells:
        features.append(block(features[-1]))
    return features


def direct_zen(model: nn.Module, shape: torch.Size) -> float:
    generator = torch.Generator().manual_seed(0)
    net = reinitialise(copy.deepcopy(model).train(), generator, nn.init.normal_)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
    images, noise = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    with torch.no_grad():
        clean = net.lastact(cell_outputs(net, images)[-1])
        mixed = net.lastact(cell_outputs(net, images + 0.01 * noise)[-1])
    expansion = (clean - mixed).abs().sum(dim=(1, 2, 3)).mean().item()
    bn_scale = [module.running_var.mean().item() for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
    return math.log(expansion) + sum(0.5 * math.log(variance) for variance in bn_scale)


def direct_meco(model: nn.Module, inputs: torch.Tensor) -> float:
    """The reference's hook verbatim in spirit: torch.corrcoef, NaN -> 0, general eig, min real part."""
    net = copy.deepcopy(model).train()
    minima = []

    def hook(module, args, output):
        feature = output[0].detach()
        corr = torch.corrcoef(feature.reshape(feature.shape[0], -1))
        corr[torch.isnan(corr) | torch.isinf(corr)] = 0
        minima.append(torch.linalg.eig(corr)[0].real.min())

    for module in net.modules():
        module.register_forward_hook(hook)
    with torch.no_grad():
        net(inputs[:1])
    values = torch.stack(minima)
    return values[torch.isfinite(values)].sum().item()


def direct_swap(model: nn.Module, inputs: torch.Tensor, repeats: int = 32) -> float:
    """The reference's sign matrix and torch.unique over neuron rows."""
    generator = torch.Generator().manual_seed(0)
    net = copy.deepcopy(model).train()
    images = inputs[:16]
    activations = []
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(
                lambda m, args, out: activations.append(out.detach()) if args[0].dim() == 4 else None
            )
    counts = []
    for _ in range(repeats):
        reinitialise(net, generator, nn.init.normal_)
        activations.clear()
        with torch.no_grad():
            net(images)
        signs = torch.sign(torch.cat([a.reshape(len(images), -1) for a in activations], dim=1))
        counts.append(torch.unique(signs.T, dim=0).shape[0])
    return float(np.mean(counts))


def kaiming_fan_in(weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=generator)


def direct_az(model: nn.Module, shape: torch.Size) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    net = reinitialise(copy.deepcopy(model).train(), generator, kaiming_fan_in)
    features = cell_outputs(net, torch.randn(shape, generator=generator).requires_grad_())
    entropies = []
    for feature in features:
        samples = feature.detach().permute(0, 2, 3, 1).reshape(-1, feature.shape[1]).double().numpy()
        spectrum = np.linalg.eigvalsh(np.cov(samples, rowvar=False, bias=True))
        p = spectrum / spectrum.sum()
        entropies.append(float(np.sum(-p * np.log(p + 1e-8))))
    scores = []
    for index in reversed(range(1, len(features))):
        grad_out = (torch.randint(0, 2, features[index].shape, generator=generator) * 2 - 1).float()
        grad_in = torch.autograd.grad(features[index], features[index - 1], grad_out, retain_graph=True)[0]
        if grad_in.shape == grad_out.shape and torch.equal(grad_in, grad_out):
            scores.append(-math.inf)
            continue
        if grad_in.shape[2:] != grad_out.shape[2:]:
            grad_in = F.pixel_unshuffle(grad_in, grad_in.shape[2] // grad_out.shape[2])
        g_in = grad_in.permute(0, 2, 3, 1).reshape(-1, grad_in.shape[1]).double().numpy()
        g_out = grad_out.permute(0, 2, 3, 1).reshape(-1, grad_out.shape[1]).double().numpy()
        mean_outer = np.einsum("ni,nj->ij", g_in, g_out) / len(g_out)
        sigma = np.linalg.svd(mean_outer, compute_uv=False).max()
        scores.append(-sigma - 1 / (sigma + 1e-6) + 2)
    return {
        "az_expressivity": sum(entropies),
        "az_progressivity": min(np.diff(entropies)),
        "az_trainability": float(np.mean(scores)),
    }


# Metadata


def test_metadata_declares_direction_data_and_paper():
    infos = {info.name: info for info in list_proxies()}
    assert set(OURS) <= set(infos)
    for name in OURS:
        info = get_proxy(name)
        assert info.higher_is_better and info.paper and info.summary and not info.needs_labels
        assert info.needs_data == (name not in DATA_FREE)


# Invariants on a tiny model


@pytest.mark.parametrize("arch", CELLS)
def test_values_are_finite_and_deterministic(arch, batch):
    names = OURS
    first = score_model(tiny_model(arch), *batch, proxies=names)
    again = score_model(tiny_model(arch), *batch, proxies=names)
    assert first == again
    assert all(math.isfinite(value) for value in first.values()), first


@pytest.mark.parametrize("training", [True, False])
def test_scoring_never_mutates_the_model(training, batch):
    model = tiny_model(MIXED_CELL).train(training)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    flags = [module.training for module in model.modules()]
    results = score_model_detailed(model, *batch, proxies=OURS)
    assert all(result.error is None for result in results.values()), results
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert [module.training for module in model.modules()] == flags
    assert all(param.grad is None for param in model.parameters())
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


def test_fused_results_equal_each_proxy_computed_alone(batch):
    model = tiny_model(MIXED_CELL)
    names = OURS
    fused = score_model(model, *batch, proxies=names)
    for name in names:
        assert fused[name] == score_model(model, *batch, proxies=(name,))[name]


def test_az_proxies_share_one_forward(batch):
    model = tiny_model(MIXED_CELL)
    calls = []
    handle = model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        score_model(model, *batch, proxies=AZ)
    finally:
        handle.remove()
    assert calls == [len(batch[0])]


def test_data_free_proxies_read_only_the_batch_shape(batch):
    model = tiny_model(ALL_CONV)
    other = load_calibration_batch("cifar10", "synthetic", batch_size=len(batch[0]), seed=7)
    names = DATA_FREE
    assert score_model(model, other.inputs, None, proxies=names) == score_model(model, *batch, proxies=names)


def test_meco_reads_one_image_and_swap_sixteen(batch):
    model = tiny_model(MIXED_CELL)
    inputs, _ = batch
    tail_changed = inputs.clone()
    tail_changed[16:] = torch.randn_like(tail_changed[16:])
    head_changed = inputs.clone()
    head_changed[1:16] = torch.randn_like(head_changed[1:16])
    original = score_model(model, inputs, None, proxies=("meco", "swap"))
    assert score_model(model, tail_changed, None, proxies=("meco", "swap")) == original
    changed = score_model(model, head_changed, None, proxies=("meco", "swap"))
    assert changed["meco"] == original["meco"] and changed["swap"] != original["swap"]


# Agreement with independent direct computations


@pytest.mark.parametrize("arch", CELLS)
def test_zen_matches_a_direct_computation(arch, batch):
    model = tiny_model(arch, seed=1)
    assert relative_error(score_model(model, *batch, proxies=("zen",))["zen"], direct_zen(model, batch[0].shape)) < 1e-5


@pytest.mark.filterwarnings("ignore:cov\\(\\)")  # the reference's corrcoef of 1-column logits
@pytest.mark.parametrize("arch", CELLS)
def test_meco_matches_the_reference_formulation(arch, batch):
    model = tiny_model(arch, seed=1)
    ours = score_model(model, *batch, proxies=("meco",))["meco"]
    assert ours > 0.05
    assert abs(ours - direct_meco(model, batch[0])) < 1e-4


@pytest.mark.parametrize("arch", CELLS)
def test_swap_matches_a_direct_computation(arch, batch):
    model = tiny_model(arch, seed=1)
    assert score_model(model, *batch, proxies=("swap",))["swap"] == direct_swap(model, batch[0])


@pytest.mark.parametrize("arch", CELLS)
def test_az_nas_matches_a_direct_computation(arch, batch):
    model = tiny_model(arch, seed=1)
    ours = score_model(model, *batch, proxies=AZ)
    expected = direct_az(model, batch[0].shape)
    for name in AZ:
        assert relative_error(ours[name], expected[name]) < 1e-6, name


def test_az_complexity_is_the_benchmarks_flop_count(batch):
    """Multiply-accumulates of the tiny all-3x3 network (channels 4, 8, 16; one cell per stage), by hand:
    stem, six 3x3 convs per cell, each reduction's two 3x3 convs and 1x1 shortcut, the classifier with bias."""
    stem = 4 * 3 * 9 * 32**2
    cells = 6 * 9 * (4 * 4 * 32**2 + 8 * 8 * 16**2 + 16 * 16 * 8**2)
    reductions = (8 * 4 * 9 + 8 * 8 * 9 + 8 * 4) * 16**2 + (16 * 8 * 9 + 16 * 16 * 9 + 16 * 8) * 8**2
    classifier = 16 * 10 + 10
    scores = score_model(tiny_model(ALL_CONV), *batch, proxies=("az_complexity", "flops"))
    assert scores["az_complexity"] == scores["flops"]
    assert scores["az_complexity"] == pytest.approx((stem + cells + reductions + classifier) / 1e6, rel=1e-12)


# Hand-worked values


def test_meco_of_two_copied_channels_is_one_minus_their_correlation():
    """Identity 1x1 conv then BatchNorm: both channels keep the image's correlation r, and each of the three
    hooked modules (the Sequential, the conv, the BatchNorm) adds λ_min([[1, r], [r, 1]]) = 1 - |r|."""
    model = nn.Sequential(nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    images = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    r = np.corrcoef(images[0, 0].numpy().ravel(), images[0, 1].numpy().ravel())[0, 1]
    assert score_model(model, images, None, proxies=("meco",))["meco"] == pytest.approx(3 * (1 - abs(r)), abs=1e-6)


def test_swap_of_a_scalar_relu_counts_the_input_sign_patterns():
    """ReLU(w·x) with one re-drawn scalar w ≠ 0: a pixel's pattern is sign(x) or its complement over the
    images, so for every draw the count is the number of distinct sign columns of the input."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
    images = torch.randn(16, 1, 5, 5, generator=torch.Generator().manual_seed(4))
    patterns = {tuple(column) for column in (images.reshape(16, -1) > 0).T.tolist()}
    assert score_model(model, images, None, proxies=("swap",))["swap"] == len(patterns)


def test_identity_cells_make_trainability_minus_infinity(batch):
    """A cell that returns its input passes the gradient unchanged: the reference scores it -inf."""
    scores = score_model(tiny_model(IDENTITY), *batch, proxies=AZ)
    assert scores["az_trainability"] == -math.inf
    assert math.isfinite(scores["az_expressivity"])


def test_disconnected_cells_score_minus_infinity_like_the_reference(batch):
    """All-zero cell outputs: zero pre-GAP difference (log 0) and a 0/0 eigen-spectrum (NaN -> -inf)."""
    scores = score_model(tiny_model(ALL_NONE), *batch, proxies=("zen", *AZ))
    assert scores["zen"] == scores["az_expressivity"] == scores["az_progressivity"] == -math.inf
    assert math.isfinite(scores["az_trainability"])
