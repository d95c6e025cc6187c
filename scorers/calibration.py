"""Calibration batches: the one mini-batch a data-dependent proxy sees, loaded reproducibly.

Sources: "synthetic" (seeded Gaussian images already in normalised units, uniform labels), a directory
with the standard python-format CIFAR-10/100 training batches (read with a restricted unpickler), or an
`.npz` with `images` (uint8, N×3×H×W or N×H×W×3) and `labels`. Images are scaled to [0, 1] then
normalised with the dataset's mean/std, as the reference's `ToTensor` + `Normalize` do (no augmentation,
so a batch is a pure function of source, sampling, seed and size).

Sampling: "random" takes the first `batch_size` images of a seeded permutation; "grasp" walks that
permutation and keeps the first k = max(1, batch_size // num_classes) images of each class, ordered by
class, as the reference's `get_some_data_grasp` does.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorers.safe_pickle import load_restricted

SAMPLINGS = ("random", "grasp")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Mean/std as the zero-cost-nas reference normalises (its CIFAR constants serve CIFAR-10 and CIFAR-100).
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", 10, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": DatasetSpec("cifar100", 100, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet16-120": DatasetSpec(
        "imagenet16-120",
        120,
        16,
        (122.68 / 255, 116.66 / 255, 104.01 / 255),
        (63.22 / 255, 61.26 / 255, 65.09 / 255),
    ),
}

_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class CalibrationDataError(ValueError):
    """A calibration source that cannot be used, with what to fix."""


@dataclass(frozen=True, eq=False)
class CalibrationBatch:
    """Normalised float32 inputs N×3×H×W, int64 targets, and a description for configuration fingerprints."""

    inputs: Tensor
    targets: Tensor
    description: str


def load_calibration_batch(
    dataset: str, source: str | Path, *, batch_size: int = 64, sampling: str = "random", seed: int = 0
) -> CalibrationBatch:
    spec = _dataset_spec(dataset)
    if batch_size < 1:
        raise CalibrationDataError(f"batch_size must be at least 1, got {batch_size}")
    if sampling not in SAMPLINGS:
        raise CalibrationDataError(f"unknown sampling {sampling!r}; use one of {', '.join(SAMPLINGS)}")
    if str(source) == "synthetic":
        inputs, targets = _synthetic(spec, batch_size, sampling, seed)
        origin = "synthetic"
    else:
        images, labels, origin = _read_source(spec, Path(source))
        order = _select(labels, spec.num_classes, batch_size, sampling, seed)
        inputs, targets = _normalise(images[order], spec), torch.from_numpy(labels[order].astype(np.int64))
    description = f"{origin}|{spec.name}|{sampling}|seed={seed}|n={len(targets)}"
    return CalibrationBatch(inputs=inputs, targets=targets, description=description)


def _dataset_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset.lower()]
    except KeyError:
        raise CalibrationDataError(f"unknown dataset {dataset!r}; use one of {', '.join(DATASETS)}") from None


def _samples_per_class(batch_size: int, num_classes: int) -> int:
    return max(1, batch_size // num_classes)


def _synthetic(spec: DatasetSpec, batch_size: int, sampling: str, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if sampling == "grasp":
        per_class = _samples_per_class(batch_size, spec.num_classes)
        targets = torch.arange(spec.num_classes).repeat_interleave(per_class)
    else:
        targets = torch.randint(0, spec.num_classes, (batch_size,), generator=generator)
    size = (len(targets), 3, spec.image_size, spec.image_size)
    return torch.randn(size, generator=generator), targets


def _select(labels: np.ndarray, num_classes: int, batch_size: int, sampling: str, seed: int) -> np.ndarray:
    permutation = np.random.default_rng(seed).permutation(len(labels))
    if sampling == "random":
        if len(labels) < batch_size:
            raise CalibrationDataError(f"the source holds {len(labels)} images, fewer than batch_size={batch_size}")
        return permutation[:batch_size]
    per_class = _samples_per_class(batch_size, num_classes)
    chosen = []
    for label in range(num_classes):
        of_class = permutation[labels[permutation] == label][:per_class]
        if len(of_class) < per_class:
            raise CalibrationDataError(
                f"grasp sampling needs {per_class} images of class {label}, the source has {len(of_class)}"
            )
        chosen.append(of_class)
    return np.concatenate(chosen)


def _normalise(images: np.ndarray, spec: DatasetSpec) -> Tensor:
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(images)).float().div(255) - mean) / std


def _read_source(spec: DatasetSpec, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Images uint8 N×3×H×W, labels int64 N, and an origin string naming the source and its digest."""
    if path.is_dir():
        images, labels, origin = _read_cifar_dir(spec, path)
    elif path.suffix == ".npz" and path.is_file():
        images, labels, origin = _read_npz(path)
    elif not path.exists():
        raise CalibrationDataError(f"calibration source {str(path)!r} does not exist (or use 'synthetic')")
    else:
        raise CalibrationDataError(f"calibration source {str(path)!r} is neither a CIFAR directory nor an .npz file")
    _check_images(images, labels, spec, path)
    return images, labels, origin


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise CalibrationDataError(f"{path.name} is not a readable .npz archive without pickles: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CalibrationDataError(f"{path.name} is a single .npy array; expected an .npz with images and labels")
    with archive:
        missing = {"images", "labels"} - set(archive.files)
        if missing:
            held = ", ".join(archive.files) or "nothing"
            raise CalibrationDataError(f"{path.name} lacks {', '.join(sorted(missing))}; it holds {held}")
        try:
            images, labels = archive["images"], archive["labels"]
        except ValueError as error:
            raise CalibrationDataError(f"{path.name} holds object arrays, which are refused: {error}") from None
    if images.ndim == 4 and images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.transpose(0, 3, 1, 2)
    return images, labels, f"npz:{path.name}:{_digest([path])}"


def _read_cifar_dir(spec: DatasetSpec, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    if spec.name not in _CIFAR_DIRS:
        raise CalibrationDataError(f"{spec.name} has no CIFAR python-format directory; give an .npz file instead")
    folder = path / _CIFAR_DIRS[spec.name] if (path / _CIFAR_DIRS[spec.name]).is_dir() else path
    files = sorted(folder.glob("data_batch_*")) if spec.name == "cifar10" else [folder / "train"]
    files = [file for file in files if file.is_file()]
    if not files:
        expected = "data_batch_1..5" if spec.name == "cifar10" else "train"
        raise CalibrationDataError(f"no CIFAR training batches ({expected}) found in {str(folder)!r}")
    label_key = "labels" if spec.name == "cifar10" else "fine_labels"
    batches = [_cifar_batch(file, label_key, spec.image_size) for file in files]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels, f"cifar-dir:{folder.name}:{_digest(files)}"


def _cifar_batch(file: Path, label_key: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    content = load_restricted(file)
    if not isinstance(content, dict) or "data" not in content or label_key not in content:
        raise CalibrationDataError(f"{file.name} is not a CIFAR batch: expected a dict with 'data' and {label_key!r}")
    data = content["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise CalibrationDataError(f"{file.name}: 'data' must be a uint8 N×(3·H·W) array")
    if data.shape[1] != 3 * image_size * image_size:
        raise CalibrationDataError(
            f"{file.name}: rows of {data.shape[1]} values, expected 3×{image_size}×{image_size}"
        )
    images = data.reshape(-1, 3, image_size, image_size)
    return images, np.asarray(content[label_key])


def _check_images(images: np.ndarray, labels: np.ndarray, spec: DatasetSpec, path: Path) -> None:
    expected = (3, spec.image_size, spec.image_size)
    if images.dtype != np.uint8:
        raise CalibrationDataError(f"{path.name}: images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[1:] != expected:
        raise CalibrationDataError(
            f"{path.name}: images shaped {images.shape}, expected N×3×{spec.image_size}×{spec.image_size} "
            f"or N×{spec.image_size}×{spec.image_size}×3 for {spec.name}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise CalibrationDataError(f"{path.name}: {labels.shape} labels for {len(images)} images; need one per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise CalibrationDataError(f"{path.name}: labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise CalibrationDataError(
            f"{path.name}: labels span {labels.min()}..{labels.max()}, "
            f"outside 0..{spec.num_classes - 1} for {spec.name}"
        )


def _digest(files: list[Path]) -> str:
    """First 12 hex digits of the SHA-256 of the files' contents, in order."""
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return f"sha256-{digest.hexdigest()[:12]}"
