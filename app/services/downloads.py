"""Explicit, user-invoked download of a CIFAR training set into the `.npz` that calibration reads.

Runtime code never downloads anything: scoring reads only what the operator put in NASSCORE_DATA_DIR.
This module is what `nasscore data download cifar10|cifar100` calls when the operator asks for the data.
The archive is checked against the MD5 its authors publish before anything in it is read, only the
training members the format defines are read (nothing is ever extracted, so no path in the archive can
reach the file system), and each member is parsed with the restricted unpickler, so neither a tampered
download nor a hostile `url` can run code or write outside `destination`. Everything is written inside a
scratch directory in `destination` and only the finished `.npz` is moved into place, so a failure at any
step leaves nothing behind.
"""

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import httpx
import numpy as np
from tqdm import tqdm

from scorers.calibration import DATASETS
from scorers.safe_pickle import load_restricted

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class KnownDataset:
    """Where a dataset's archive is published, its published MD5, and where its training split lies inside."""

    url: str
    md5: str
    members: tuple[str, ...]
    label_key: str


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "cifar10": KnownDataset(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        members=tuple(f"cifar-10-batches-py/data_batch_{index}" for index in range(1, 6)),
        label_key="labels",
    ),
    "cifar100": KnownDataset(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        members=("cifar-100-python/train",),
        label_key="fine_labels",
    ),
}


class DownloadError(ValueError):
    """The download or its archive cannot be used; the message says what went wrong and where."""


def download_dataset(
    name: str,
    destination: Path,
    *,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download dataset `name`'s archive, verify it, and write its training split to `destination/<name>.npz`.

    `url` replaces the published address (a mirror, or a local server in tests); the archive must still
    match the published MD5 unless `md5` names another. `timeout` is in seconds, for connecting and for
    each read. The `.npz` holds `images` (uint8, N×3×32×32) and `labels` (int64, N); an existing file of
    that name is replaced only once the new one is complete. DownloadError when the server, the MD5 or the
    archive's content is at fault; OSError from the local file system (disk full, no permission) passes through.
    """
    key = name.lower()
    spec = _known_dataset(key)
    source = url or spec.url
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / f"{key}.npz"
    with tempfile.TemporaryDirectory(prefix=f".{key}-download-", dir=destination) as scratch_name:
        scratch = Path(scratch_name)
        archive = scratch / "archive.tar.gz"
        digest = _fetch(source, archive, progress=progress, timeout=timeout, label=key)
        _check_md5(digest, md5 or spec.md5, source)
        images, labels = _read_training_split(archive, spec, key, scratch)
        finished = scratch / target.name
        np.savez(finished, images=images, labels=labels)
        os.replace(finished, target)
    return target


def _known_dataset(name: str) -> KnownDataset:
    try:
        return KNOWN_DATASETS[name]
    except KeyError:
        known = ", ".join(KNOWN_DATASETS)
        raise DownloadError(f"unknown dataset {name!r}; downloadable datasets: {known}") from None


def _fetch(url: str, target: Path, *, progress: bool, timeout: float, label: str) -> str:
    """Stream `url` into `target` and return the MD5 of the bytes written.

    The body is read raw and the server is asked not to encode it, so the bytes on disk are the published
    file itself (some servers label a .tar.gz as gzip-encoded, and decoding it would break the MD5).
    """
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with httpx.stream(
            "GET", url, timeout=timeout, follow_redirects=True, headers={"Accept-Encoding": "identity"}
        ) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0)) or None
            with (
                open(target, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress) as bar,
            ):
                for chunk in response.iter_raw(_CHUNK_BYTES):
                    out.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPStatusError as error:
        status = f"{error.response.status_code} {error.response.reason_phrase}"
        raise DownloadError(f"{url} answered HTTP {status}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise DownloadError(f"downloading {url} failed: {error}") from None
    return md5.hexdigest()


def _check_md5(actual: str, expected: str, url: str) -> None:
    if actual != expected.lower():
        raise DownloadError(
            f"the archive from {url} has MD5 {actual}, expected {expected.lower()}: "
            "it is incomplete, corrupted or not the published file, and was discarded"
        )


def _read_training_split(archive: Path, spec: KnownDataset, name: str, scratch: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the training members, in the archive's documented order.

    Members are looked up by their exact expected names and read as streams; nothing is extracted, so
    other members, whatever their paths, are never written anywhere.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            batches = [_read_member(tar, member, spec.label_key, name, scratch) for member in spec.members]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DownloadError(f"the downloaded archive is not a readable .tar.gz: {error}") from None
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return images, labels


def _read_member(
    tar: tarfile.TarFile, member_name: str, label_key: str, name: str, scratch: Path
) -> tuple[np.ndarray, np.ndarray]:
    """One python-format batch, copied to a scratch file because the restricted loader reads paths."""
    try:
        member = tar.getmember(member_name)
    except KeyError:
        raise DownloadError(f"the archive has no member {member_name!r}; is it the {name} python archive?") from None
    if not member.isfile():
        raise DownloadError(f"the archive's {member_name!r} is not a regular file (a link or directory), refused")
    scratch_file = scratch / "member.pickle"
    # extractfile gives None only for a member that is not a regular file, refused above
    with cast(IO[bytes], tar.extractfile(member)) as source, open(scratch_file, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK_BYTES)
    try:
        content = load_restricted(scratch_file)
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DownloadError(f"the archive's {member_name!r} is not a loadable CIFAR batch: {error}") from None
    finally:
        scratch_file.unlink()
    return _batch_arrays(content, member_name, label_key, name)


def _batch_arrays(content: object, member_name: str, label_key: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate here what calibration checks on load, so that a bad batch never becomes a valid-looking .npz."""
    spec = DATASETS[name]
    if not isinstance(content, dict) or "data" not in content or label_key not in content:
        raise DownloadError(f"{member_name!r} is not a CIFAR batch: expected a dict with 'data' and {label_key!r}")
    data, labels = content["data"], np.asarray(content[label_key])
    row = 3 * spec.image_size * spec.image_size
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise DownloadError(f"{member_name!r}: 'data' must be a uint8 N×{row} array")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DownloadError(f"{member_name!r}: {label_key!r} must be one integer label per image")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DownloadError(f"{member_name!r}: labels outside 0..{spec.num_classes - 1}")
    images = data.reshape(-1, 3, spec.image_size, spec.image_size)
    return images, labels.astype(np.int64)
