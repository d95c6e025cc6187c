"""Device choice and CPU threads, and CUDA scores equal to CPU scores."""

import copy
import json
import os
import platform
import subprocess
import sys

import pytest
import torch
from conftest import ALL_CONV, relative_error, small_model

from scorers import score_model
from scorers.device import configure_cpu_threads, resolve_device, use_tf32

# Every proxy family: the pruning saliencies, the baselines, and the expressivity proxies.
PROXIES = (
    "snip",
    "grasp",
    "synflow",
    "grad_norm",
    "fisher",
    "jacob_cov",
    "nwot",
    "zico",
    "params",
    "flops",
    "l2_norm",
    "zen",
    "meco",
    "swap",
    "az_expressivity",
    "az_progressivity",
    "az_trainability",
    "az_complexity",
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x"):
        with pytest.raises(ValueError):
            resolve_device(bad)


def test_configure_cpu_threads_sets_torch_threads():
    previous = torch.get_num_threads()
    try:
        assert configure_cpu_threads(3) == torch.get_num_threads() == 3
        assert configure_cpu_threads(0) == 1
        assert 1 <= configure_cpu_threads() == torch.get_num_threads() <= (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(previous)


# Scores one NB201 network repeatedly and counts the minor page faults of a warm scoring, before and after
# retain_freed_memory(): in a process of its own, since the allocator setting lasts as long as the process.
# The fewest of three scorings is kept, so pages the kernel reclaims meanwhile (memory pressure from other
# processes) do not count as the allocator's.
PAGE_FAULTS_SCRIPT = """
import json, resource
import torch
from scorers import score_model
from scorers.calibration import load_calibration_batch
from scorers.device import retain_freed_memory
from search_spaces import nb201

torch.set_num_threads(1)
batch = load_calibration_batch("cifar10", "synthetic", batch_size=32, seed=0)
torch.manual_seed(0)
model = nb201.build_model(%r, 10, channels=16, cells_per_stage=1)

def warm_page_faults():
    score_model(model, batch.inputs, batch.targets, ("snip", "grasp"))
    counts = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        score_model(model, batch.inputs, batch.targets, ("snip", "grasp"))
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts)

default = warm_page_faults()
retained = retain_freed_memory()
print(json.dumps({"default": default, "retained": retained, "after": warm_page_faults()}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="retain_freed_memory sets glibc's allocator")
def test_retained_freed_memory_is_reused_instead_of_faulted_in_again():
    run = subprocess.run(
        [sys.executable, "-c", PAGE_FAULTS_SCRIPT % ALL_CONV], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    faults = json.loads(run.stdout)
    assert faults["retained"] is True
    assert faults["after"] * 10 < faults["default"], faults


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_resolve_device_explains_missing_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_match_cpu(synthetic_batch):
    """Random draws are made on the CPU, so only float rounding differs; a ReLU code near 0 may flip, so
    SWAP's count gets a looser bound."""
    model = small_model(ALL_CONV)
    on_cpu = score_model(model, *synthetic_batch, PROXIES)
    on_gpu = score_model(copy.deepcopy(model).cuda(), *synthetic_batch, PROXIES)
    for name in PROXIES:
        assert relative_error(on_gpu[name], on_cpu[name]) < (1e-2 if name == "swap" else 1e-3), name


def test_use_tf32_switches_convolutions_and_matrix_products_together():
    """PyTorch's defaults differ (cuDNN convolutions may use TF32, matrix products may not): one switch."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        for enabled in (True, False):
            use_tf32(enabled)
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (enabled, enabled)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
