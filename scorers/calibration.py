"""Calibration batches: the one mini-batch a data-dependent proxy sees, loaded reproducibly.

Real images live in an `ImageSet` (uint8 N×3×H×W, integer labels, one dataset), addressed by the SHA-256
of its content and normalisation, never by a file name: the same pixels are the same set wherever they
came from, so configurations, caches and leaderboards cannot split on a path. Sources of real sets: an
`.npz` with `images` (uint8, N×3×H×W or N×H×W×3) and `labels`, a directory with the standard python-format
CIFAR-10/100 training batches (read with a restricted unpickler), or the small real CIFAR-10 set shipped
in `scorers/data/`. "synthetic" gives seeded Gaussian images already in normalised units and uniform labels.
Images are scaled to [0, 1] then normalised with the dataset's mean/std, as the reference's `ToTensor` +
`Normalize` do (no augmentation, so a batch is a pure function of its images).

Sampling: "random" takes the first `batch_size` images of a seeded permutation; "grasp" walks that
permutation and keeps the first k = max(1, batch_size // num_classes) images of each class, ordered by
class, as the reference's `get_some_data_grasp` does.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorers.safe_pickle import load_restricted

SAMPLINGS = ("random", "grasp")
SYNTHETIC = "synthetic"
# The real CIFAR-10 set shipped with the package: 100 training images per class (1,000 in all), drawn with
# a seeded permutation (seed 20261129) from the 3,805 shared CIFAR-10 training images, in their order.
BUILTIN_SETS = {"cifar10": Path(__file__).parent / "data" / "cifar10_calibration_1000.npz"}
DIGEST_VERSION = "nasscore-images-v1"


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
    """Normalised float32 inputs N×3×H×W, int64 targets, a readable description, and the digest of the
    real images it was made from (None for synthetic data)."""

    inputs: Tensor
    targets: Tensor
    description: str
    digest: str | None = None


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Real images of one dataset, validated: uint8 N×3×H×W and int64 labels in range. `origin` says where
    they were read from (informational only: it is not part of the identity)."""

    dataset: str
    images: np.ndarray
    labels: np.ndarray
    origin: str = ""

    def __post_init__(self) -> None:
        _check_images(self.images, self.labels, _dataset_spec(self.dataset), self.origin or self.dataset)

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the dataset, its normalisation, the shape, the pixels and the labels."""
        spec = _dataset_spec(self.dataset)
        header = {
            "v": DIGEST_VERSION,
            "dataset": spec.name,
            "mean": spec.mean,
            "std": spec.std,
            "shape": list(self.images.shape),
        }
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(self.labels.astype("<i8").tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, batch_size: int, sampling: str, seed: int) -> ImageSet:
        """The calibration batch drawn from this set (see the module docstring for the two samplings)."""
        _check_batch_request(batch_size, sampling)
        order = _select(self.labels, _dataset_spec(self.dataset).num_classes, batch_size, sampling, seed)
        origin = f"{sampling} batch of {len(order)} (seed {seed}) from sha256:{self.digest[:12]}"
        return ImageSet(self.dataset, self.images[order], self.labels[order], origin)

    def to_batch(self, description: str | None = None) -> CalibrationBatch:
        spec = _dataset_spec(self.dataset)
        inputs = _normalise(self.images, spec)
        targets = torch.from_numpy(self.labels.astype(np.int64))
        text = description or f"sha256:{self.digest[:12]}|{spec.name}|n={len(self)}"
        return CalibrationBatch(inputs=inputs, targets=targets, description=text, digest=self.digest)

    def buffers(self) -> tuple[bytes, bytes]:
        """The raw bytes to store: pixels (uint8, C order) and labels (int64 little-endian)."""
        return np.ascontiguousarray(self.images).tobytes(), self.labels.astype("<i8").tobytes()

    @classmethod
    def from_buffers(cls, dataset: str, count: int, images: bytes, labels: bytes, origin: str = "") -> ImageSet:
        """The inverse of `buffers`, for sets read back from the database."""
        size = _dataset_spec(dataset).image_size
        pixels = np.frombuffer(images, dtype=np.uint8)
        if pixels.size != count * 3 * size * size or len(labels) != 8 * count:
            raise CalibrationDataError(f"stored image set of {count} images has the wrong number of bytes")
        return cls(dataset, pixels.reshape(count, 3, size, size), np.frombuffer(labels, dtype="<i8"), origin)


def load_calibration_batch(
    dataset: str, source: str | Path, *, batch_size: int = 64, sampling: str = "random", seed: int = 0
) -> CalibrationBatch:
    """A batch from "synthetic", "builtin" (the shipped set) or a local file/directory of real images."""
    if str(source) == SYNTHETIC:
        return synthetic_batch(dataset, batch_size=batch_size, sampling=sampling, seed=seed)
    images = builtin_image_set(dataset) if str(source) == "builtin" else read_image_set(dataset, Path(source))
    if images is None:
        raise CalibrationDataError(f"no real data is shipped for {dataset!r}; give a file or use 'synthetic'")
    return describe_selection(images, batch_size, sampling, seed)


def describe_selection(images: ImageSet, batch_size: int, sampling: str, seed: int) -> CalibrationBatch:
    batch = images.select(batch_size, sampling, seed)
    description = f"sha256:{batch.digest[:12]}|{images.dataset}|{sampling}|seed={seed}|n={len(batch)}"
    return batch.to_batch(description)


def synthetic_batch(dataset: str, *, batch_size: int, sampling: str, seed: int) -> CalibrationBatch:
    spec = _dataset_spec(dataset)
    _check_batch_request(batch_size, sampling)
    inputs, targets = _synthetic(spec, batch_size, sampling, seed)
    return CalibrationBatch(inputs, targets, synthetic_description(dataset, batch_size, sampling, seed))


def synthetic_description(dataset: str, batch_size: int, sampling: str, seed: int) -> str:
    """Names a synthetic batch completely: it is a pure function of these values."""
    spec = _dataset_spec(dataset)
    count = batch_size if sampling == "random" else _samples_per_class(batch_size, spec.num_classes) * spec.num_classes
    return f"{SYNTHETIC}|{spec.name}|{sampling}|seed={seed}|n={count}"


def builtin_image_set(dataset: str) -> ImageSet | None:
    """The real images shipped with the package for `dataset`, if any."""
    path = BUILTIN_SETS.get(_dataset_spec(dataset).name)
    if path is None:
        return None
    images = read_image_set(dataset, path)
    return ImageSet(images.dataset, images.images, images.labels, f"shipped with nasscore ({path.name})")


def read_image_set(dataset: str, path: Path) -> ImageSet:
    """Read and validate real images from an .npz or a CIFAR python-format directory."""
    spec = _dataset_spec(dataset)
    images, labels, origin = _read_source(spec, path)
    return ImageSet(spec.name, images, labels, origin)


def _check_batch_request(batch_size: int, sampling: str) -> None:
    if batch_size < 1:
        raise CalibrationDataError(f"batch_size must be at least 1, got {batch_size}")
    if sampling not in SAMPLINGS:
        raise CalibrationDataError(f"unknown sampling {sampling!r}; use one of {', '.join(SAMPLINGS)}")


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
    return (torch.from_numpy(np.array(images, dtype=np.uint8)).float().div(255) - mean) / std


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
        raise CalibrationDataError(f"{file.name}: rows of {data.shape[1]} values, expected 3×{image_size}×{image_size}")
    images = data.reshape(-1, 3, image_size, image_size)
    return images, np.asarray(content[label_key])


def _check_images(images: np.ndarray, labels: np.ndarray, spec: DatasetSpec, name: str) -> None:
    expected = (3, spec.image_size, spec.image_size)
    if images.dtype != np.uint8:
        raise CalibrationDataError(f"{name}: images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[1:] != expected:
        raise CalibrationDataError(
            f"{name}: images shaped {images.shape}, expected N×3×{spec.image_size}×{spec.image_size} "
            f"or N×{spec.image_size}×{spec.image_size}×3 for {spec.name}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise CalibrationDataError(f"{name}: {labels.shape} labels for {len(images)} images; need one per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise CalibrationDataError(f"{name}: labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise CalibrationDataError(
            f"{name}: labels span {labels.min()}..{labels.max()}, outside 0..{spec.num_classes - 1} for {spec.name}"
        )


def _digest(files: list[Path]) -> str:
    """First 12 hex digits of the SHA-256 of the files' contents, in order."""
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return f"sha256-{digest.hexdigest()[:12]}"
