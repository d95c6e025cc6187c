"""Calibration batches: real files (npz archives, CIFAR python-format pickles) written to temp dirs and
the shared CIFAR-10 batch; checks contents, sampling, validation errors and the restricted unpickler."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import denormalise, index_of_rows

from scorers.calibration import (
    BUILTIN_SETS,
    DATASETS,
    CalibrationDataError,
    ImageSet,
    builtin_image_set,
    load_calibration_batch,
)
from scorers.safe_pickle import UnsafePickleError


def _random_images(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8)


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str = "labels") -> None:
    content = {
        "batch_label": "training batch",
        label_key: labels,
        "data": images.reshape(len(images), -1),
        "filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    path.write_bytes(pickle.dumps(content, protocol=2))


def test_datasets_describe_the_three_nb201_datasets():
    assert {name: (spec.num_classes, spec.image_size) for name, spec in DATASETS.items()} == {
        "cifar10": (10, 32),
        "cifar100": (100, 32),
        "imagenet16-120": (120, 16),
    }
    for spec in DATASETS.values():
        assert len(spec.mean) == len(spec.std) == 3
        assert all(0 < value < 1 for value in (*spec.mean, *spec.std))


def test_npz_batch_is_normalised_images_from_the_file_with_their_labels(tmp_path):
    images, labels = _random_images(200), np.arange(200) % 10
    path = _write_npz(tmp_path / "train.npz", images=images, labels=labels.astype(np.uint8))
    batch = load_calibration_batch("cifar10", path, batch_size=32, seed=3)
    assert batch.inputs.shape == (32, 3, 32, 32) and batch.inputs.dtype == torch.float32
    assert batch.targets.dtype == torch.int64
    rows = index_of_rows(images, denormalise(batch, "cifar10"))
    assert len(set(rows)) == 32
    assert batch.targets.tolist() == labels[rows].tolist()


def test_npz_channels_last_layout_gives_the_same_batch(tmp_path):
    images, labels = _random_images(50), np.arange(50) % 10
    nchw = _write_npz(tmp_path / "a.npz", images=images, labels=labels)
    first = load_calibration_batch("cifar10", nchw, batch_size=8)
    nhwc = _write_npz(tmp_path / "b.npz", images=images.transpose(0, 2, 3, 1).copy(), labels=labels)
    second = load_calibration_batch("cifar10", nhwc, batch_size=8)
    assert torch.equal(first.inputs, second.inputs) and torch.equal(first.targets, second.targets)


def test_random_sampling_is_seeded(tmp_path):
    path = _write_npz(tmp_path / "t.npz", images=_random_images(100), labels=np.arange(100) % 10)
    same = [load_calibration_batch("cifar10", path, batch_size=16, seed=5) for _ in range(2)]
    other = load_calibration_batch("cifar10", path, batch_size=16, seed=6)
    assert torch.equal(same[0].inputs, same[1].inputs) and same[0].description == same[1].description
    assert not torch.equal(same[0].inputs, other.inputs)
    assert same[0].description != other.description


def test_grasp_sampling_is_class_balanced_and_ordered_by_class(cifar10_npz):
    batch = load_calibration_batch("cifar10", cifar10_npz, batch_size=64, sampling="grasp", seed=1)
    assert batch.targets.tolist() == [label for label in range(10) for _ in range(6)]
    images = np.load(cifar10_npz)["images"]
    labels = np.load(cifar10_npz)["labels"]
    rows = index_of_rows(images, denormalise(batch, "cifar10"))
    assert labels[rows].tolist() == batch.targets.tolist()


def test_grasp_sampling_takes_at_least_one_per_class():
    batch = load_calibration_batch("cifar100", "synthetic", batch_size=64, sampling="grasp")
    assert torch.equal(torch.bincount(batch.targets), torch.ones(100, dtype=torch.int64))


def test_grasp_sampling_reports_a_missing_class(tmp_path):
    path = _write_npz(tmp_path / "t.npz", images=_random_images(40), labels=np.arange(40) % 9)
    with pytest.raises(CalibrationDataError, match="class 9"):
        load_calibration_batch("cifar10", path, batch_size=20, sampling="grasp")


def test_batch_identity_is_its_content_not_the_file_name(cifar10_npz, tmp_path):
    batch = load_calibration_batch("cifar10", cifar10_npz)
    assert batch.inputs.shape == (64, 3, 32, 32)
    assert batch.description.startswith(f"sha256:{batch.digest[:12]}|cifar10|random|seed=0|n=64")
    renamed = tmp_path / "renamed.npz"
    renamed.write_bytes(cifar10_npz.read_bytes())
    assert load_calibration_batch("cifar10", renamed).digest == batch.digest
    assert load_calibration_batch("cifar10", renamed, seed=1).digest != batch.digest


def test_image_set_digest_covers_pixels_labels_and_normalisation(tmp_path):
    images, labels = _random_images(12, seed=4), np.arange(12) % 10
    base = ImageSet("cifar10", images, labels)
    flipped = images.copy()
    flipped[0, 0, 0, 0] ^= 1
    relabelled = labels.copy()
    relabelled[0] = 9
    digests = {
        base.digest,
        ImageSet("cifar10", flipped, labels).digest,
        ImageSet("cifar10", images, relabelled).digest,
        ImageSet("cifar100", images, labels).digest,  # same pixels, another dataset and label space
    }
    assert len(digests) == 4
    pixels, label_bytes = base.buffers()
    assert ImageSet.from_buffers("cifar10", 12, pixels, label_bytes).digest == base.digest


def test_shipped_cifar10_set_is_real_balanced_and_small():
    shipped = builtin_image_set("cifar10")
    assert len(shipped) == 1000 and np.bincount(shipped.labels).tolist() == [100] * 10
    assert BUILTIN_SETS["cifar10"].stat().st_size <= 4 * 1024 * 1024
    assert shipped.images.std() > 30  # natural images, not a constant or noise-free fill
    assert builtin_image_set("cifar100") is None
    batch = load_calibration_batch("cifar10", "builtin", batch_size=32, seed=1)
    assert batch.inputs.shape == (32, 3, 32, 32) and batch.digest == shipped.select(32, "random", 1).digest


def test_synthetic_batches_are_seeded_gaussian_with_labels_in_range():
    batch = load_calibration_batch("imagenet16-120", "synthetic", batch_size=256, seed=7)
    assert batch.inputs.shape == (256, 3, 16, 16)
    assert abs(batch.inputs.mean().item()) < 0.05 and abs(batch.inputs.std().item() - 1) < 0.05
    assert batch.targets.min() >= 0 and batch.targets.max() < 120
    again = load_calibration_batch("imagenet16-120", "synthetic", batch_size=256, seed=7)
    other_seed = load_calibration_batch("imagenet16-120", "synthetic", batch_size=256)
    assert torch.equal(batch.inputs, again.inputs) and not torch.equal(batch.inputs, other_seed.inputs)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": _random_images(10)}, "lacks labels"),
        ({"images": _random_images(10).astype(np.float32), "labels": np.zeros(10, np.int64)}, "uint8"),
        ({"images": _random_images(10, size=16), "labels": np.zeros(10, np.int64)}, "expected N×3×32×32"),
        ({"images": _random_images(10), "labels": np.zeros(9, np.int64)}, "one per image"),
        ({"images": _random_images(10), "labels": np.full(10, 10)}, "outside 0..9"),
        ({"images": _random_images(10), "labels": np.full(10, -1)}, "outside 0..9"),
        ({"images": _random_images(10), "labels": np.zeros(10, np.float32)}, "integers"),
    ],
)
def test_npz_validation_errors_say_what_is_wrong(tmp_path, arrays, message):
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CalibrationDataError, match=message):
        load_calibration_batch("cifar10", path, batch_size=4)


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    labels = np.array([object()] * 10, dtype=object)
    path = tmp_path / "objects.npz"
    np.savez(path, images=_random_images(10), labels=labels)
    with pytest.raises(CalibrationDataError, match="object arrays"):
        load_calibration_batch("cifar10", path, batch_size=4)


def test_non_archive_and_missing_sources_are_reported(tmp_path):
    fake = tmp_path / "fake.npz"
    fake.write_bytes(b"not a zip archive")
    with pytest.raises(CalibrationDataError, match="not a readable .npz"):
        load_calibration_batch("cifar10", fake)
    with pytest.raises(CalibrationDataError, match="does not exist"):
        load_calibration_batch("cifar10", tmp_path / "absent.npz")


def test_unknown_dataset_sampling_and_bad_batch_size_are_rejected():
    with pytest.raises(CalibrationDataError, match="cifar10, cifar100, imagenet16-120"):
        load_calibration_batch("mnist", "synthetic")
    with pytest.raises(CalibrationDataError, match="random, grasp"):
        load_calibration_batch("cifar10", "synthetic", sampling="stratified")
    with pytest.raises(CalibrationDataError, match="at least 1"):
        load_calibration_batch("cifar10", "synthetic", batch_size=0)


def test_cifar10_python_directory_is_read(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = _random_images(60, seed=1)
    labels = [i % 10 for i in range(60)]
    _write_cifar_batch(folder / "data_batch_1", images[:30], labels[:30])
    _write_cifar_batch(folder / "data_batch_2", images[30:], labels[30:])
    batch = load_calibration_batch("cifar10", tmp_path, batch_size=20, seed=2)
    rows = index_of_rows(images, denormalise(batch, "cifar10"))
    assert batch.targets.tolist() == [labels[row] for row in rows]
    assert batch.description.startswith(f"sha256:{batch.digest[:12]}|")
    assert torch.equal(batch.inputs, load_calibration_batch("cifar10", folder, batch_size=20, seed=2).inputs)


def test_cifar100_python_directory_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = _random_images(300, seed=4)
    labels = [i % 100 for i in range(300)]
    _write_cifar_batch(folder / "train", images, labels, label_key="fine_labels")
    batch = load_calibration_batch("cifar100", tmp_path, batch_size=100, sampling="grasp")
    assert batch.targets.tolist() == list(range(100))
    rows = index_of_rows(images, denormalise(batch, "cifar100"))
    assert [labels[row] for row in rows] == list(range(100))


def test_directory_without_batches_is_reported(tmp_path):
    with pytest.raises(CalibrationDataError, match="data_batch_1..5"):
        load_calibration_batch("cifar10", tmp_path)
    with pytest.raises(CalibrationDataError, match="give an .npz"):
        load_calibration_batch("imagenet16-120", tmp_path)


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_a_pickle_that_runs_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"
    payload = {"data": _RunsShell(marker), "labels": [0]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"system.*only hold numpy arrays"):
        load_calibration_batch("cifar10", tmp_path, batch_size=1)
    assert not marker.exists()


def test_restricted_unpickler_refuses_codecs_beyond_latin1(tmp_path):
    class _Rot13:
        def __reduce__(self):
            import _codecs

            return _codecs.encode, ("payload", "rot13")

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _Rot13(), "labels": []}, protocol=2))
    with pytest.raises(UnsafePickleError, match="rot13"):
        load_calibration_batch("cifar10", tmp_path, batch_size=1)
