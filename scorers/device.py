"""Device selection shared by the CLI and the service, so "auto" means the same thing everywhere."""

import ctypes
import os

import torch

# glibc's mallopt parameters and the largest mmap threshold it accepts on 64-bit systems.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST_MMAP_THRESHOLD = 32 * 2**20
_NEVER_TRIM = 2**31 - 1


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """ "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N" -> a usable `torch.device`.

    Raises ValueError with an actionable message for malformed names or a CUDA device that is absent.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    name = spec.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        return _cuda_device(name)
    raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def _cuda_device(name: str) -> torch.device:
    index_text = name.partition(":")[2]
    if index_text and not index_text.isdigit():
        raise ValueError(f"malformed CUDA device {name!r}; use cuda or cuda:N with N a device index")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; use auto or cpu")
    index = int(index_text) if index_text else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", index)


def configure_cpu_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads to `num_threads`, or by default to the cores not already busy, and
    return the count.

    Scoring is a few large convolutions per pass, so intra-op parallelism is what pays, but only on idle
    cores: on a shared machine a thread per core makes every parallel op wait for a descheduled thread
    (we measured the reference procedure 10x slower with 2 threads on 2 loaded cores than with 1).
    """
    if num_threads is None:
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
        num_threads = available - busy
    threads = max(1, num_threads)
    torch.set_num_threads(threads)
    return threads


def use_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 tensor-core math for CUDA convolutions and matrix products, process-wide.

    PyTorch forbids it for matrix products but allows it for cuDNN convolutions by default, so GPU scores
    would differ from CPU ones by about 1e-3 (TF32 keeps 10 mantissa bits). Scoring forbids it unless asked:
    then GPU and CPU values agree to float32 rounding, and proxies that sum many terms (GraSP, SynFlow) do not
    drift.
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def retain_freed_memory() -> bool:
    """Have the C allocator keep the memory torch frees for reuse instead of returning it to the system
    (glibc's `mallopt`); True when it took effect, False where there is no such call.

    A scoring pass allocates and frees activation-sized buffers (4 MiB each for an NB201 network on 64
    CIFAR-10 images) hundreds of times. By default glibc hands freed memory at the top of its heap back to the
    system and maps large blocks afresh, so such buffers are faulted in page by page again and again: about
    100,000 minor page faults per NB201 cell, some 10 % of its CPU time (bench/score_speed.py). With a fixed
    32 MiB mmap threshold and no trimming they are reused. The price: the process's resident memory stays at
    the peak of the largest network it scored instead of falling back between networks. Call it once, early,
    in a process that scores many networks.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST_MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
