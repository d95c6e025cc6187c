"""Dataset downloads: small archives in the real CIFAR python layout, served by a real HTTP server on
127.0.0.1; checks the written .npz, that it is a calibration source, MD5/HTTP/connection failures leaving
nothing behind, and that hostile archives (stray paths, links, code-running pickles) touch nothing."""

import functools
import hashlib
import io
import pickle
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import denormalise, free_port, index_of_rows

from app.services.downloads import KNOWN_DATASETS, DownloadError, download_dataset
from scorers.calibration import load_calibration_batch

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
IMAGES_PER_BATCH = 20


@dataclass
class Server:
    root: Path
    base_url: str

    def publish(self, name: str, payload: bytes) -> tuple[str, str]:
        """Serve `payload` as `name`; its URL and MD5."""
        (self.root / name).write_bytes(payload)
        return f"{self.base_url}/{name}", hashlib.md5(payload).hexdigest()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


def _batch_pickle(images: np.ndarray, labels: dict[str, list[int]]) -> bytes:
    """A batch as the published archives hold it: a dict with 'data' rows (R, G, B planes) and label lists."""
    content = {
        "batch_label": "training batch",
        "data": images.reshape(len(images), -1),
        **labels,
        "filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(content, protocol=2)


def _tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for name, link_target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, link_target
            tar.addfile(info)
    return buffer.getvalue()


def _cifar10_members(batches: int = 5) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """Training batches plus the test batch and meta the real archive also holds; the training images and labels."""
    members, all_images, all_labels = {}, [], []
    for index in range(1, batches + 1):
        images = _images(IMAGES_PER_BATCH, seed=index)
        labels = [int(label) for label in np.random.default_rng(100 + index).integers(0, 10, IMAGES_PER_BATCH)]
        members[f"{CIFAR10_DIR}/data_batch_{index}"] = _batch_pickle(images, {"labels": labels})
        all_images.append(images)
        all_labels.extend(labels)
    members[f"{CIFAR10_DIR}/test_batch"] = _batch_pickle(_images(7, seed=99), {"labels": [0] * 7})
    members[f"{CIFAR10_DIR}/batches.meta"] = pickle.dumps({"label_names": ["airplane"] * 10}, protocol=2)
    return members, np.concatenate(all_images), np.array(all_labels)


def _cifar100_members() -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    images = _images(60, seed=7)
    fine = [int(label) for label in np.random.default_rng(8).integers(0, 100, 60)]
    coarse = [label // 5 for label in fine]
    members = {
        f"{CIFAR100_DIR}/train": _batch_pickle(images, {"fine_labels": fine, "coarse_labels": coarse}),
        f"{CIFAR100_DIR}/test": _batch_pickle(_images(5, seed=9), {"fine_labels": [1] * 5, "coarse_labels": [0] * 5}),
    }
    return members, images, np.array(fine)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["images", "labels"]
        return archive["images"], archive["labels"]


def test_known_datasets_are_the_published_cifar_archives():
    assert {name: (spec.url, spec.md5) for name, spec in KNOWN_DATASETS.items()} == {
        "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
        "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
    }


def test_cifar10_download_writes_the_five_training_batches_as_npz(server, tmp_path):
    members, images, labels = _cifar10_members()
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    destination = tmp_path / "data" / "nested"
    path = download_dataset("cifar10", destination, url=url, md5=md5, progress=False)
    assert path == destination / "cifar10.npz"
    stored_images, stored_labels = _load_npz(path)
    assert stored_images.dtype == np.uint8 and stored_images.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert np.array_equal(stored_images, images)
    assert stored_labels.dtype == np.int64 and stored_labels.tolist() == labels.tolist()
    assert [entry.name for entry in destination.iterdir()] == ["cifar10.npz"]


def test_cifar100_download_reads_the_train_member_with_its_fine_labels(server, tmp_path):
    members, images, fine = _cifar100_members()
    url, md5 = server.publish("cifar-100-python.tar.gz", _tar_gz(members))
    path = download_dataset("CIFAR100", tmp_path, url=url, md5=md5.upper(), progress=False)
    assert path == tmp_path / "cifar100.npz"
    stored_images, stored_labels = _load_npz(path)
    assert np.array_equal(stored_images, images)
    assert stored_labels.tolist() == fine.tolist()


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_downloaded_npz_is_a_calibration_source(server, tmp_path, dataset):
    members, images, labels = _cifar10_members() if dataset == "cifar10" else _cifar100_members()
    url, md5 = server.publish("archive.tar.gz", _tar_gz(members))
    path = download_dataset(dataset, tmp_path / "data", url=url, md5=md5, progress=False)
    batch = load_calibration_batch(dataset, path, batch_size=8, seed=1)
    assert batch.inputs.shape == (8, 3, 32, 32)
    rows = index_of_rows(images, denormalise(batch, dataset))
    assert len(set(rows)) == 8
    assert batch.targets.tolist() == labels[rows].tolist()


def test_progress_bar_is_shown_when_asked(server, tmp_path, capsys):
    members, _, _ = _cifar10_members()
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    download_dataset("cifar10", tmp_path / "data", url=url, md5=md5, progress=True)
    assert "cifar10" in capsys.readouterr().err


def test_md5_mismatch_is_refused_and_keeps_the_previous_file(server, tmp_path):
    members, _, _ = _cifar10_members()
    url, _ = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    destination = tmp_path / "data"
    destination.mkdir()
    (destination / "cifar10.npz").write_bytes(b"previous")
    with pytest.raises(DownloadError, match="MD5 .* expected 0{32}"):
        download_dataset("cifar10", destination, url=url, md5="0" * 32, progress=False)
    assert [entry.name for entry in destination.iterdir()] == ["cifar10.npz"]
    assert (destination / "cifar10.npz").read_bytes() == b"previous"


def test_an_overridden_url_is_still_checked_against_the_published_md5(server, tmp_path):
    members, _, _ = _cifar10_members()
    url, _ = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"expected {KNOWN_DATASETS['cifar10'].md5}"):
        download_dataset("cifar10", destination, url=url, progress=False)
    assert list(destination.iterdir()) == []


def test_http_error_is_refused_and_leaves_nothing(server, tmp_path):
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_dataset("cifar10", destination, url=f"{server.base_url}/missing.tar.gz", md5="0" * 32, progress=False)
    assert list(destination.iterdir()) == []


def test_connection_error_is_refused_and_leaves_nothing(tmp_path):
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="failed"):
        download_dataset(
            "cifar10",
            destination,
            url=f"http://127.0.0.1:{free_port()}/a.tar.gz",
            md5="0" * 32,
            progress=False,
            timeout=5,
        )
    assert list(destination.iterdir()) == []


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="unknown dataset 'imagenet16-120'.*cifar10, cifar100"):
        download_dataset("imagenet16-120", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_members_with_other_paths_are_never_written(server, tmp_path, monkeypatch):
    members, images, _ = _cifar10_members()
    absolute = tmp_path / "absolute_evil"
    hostile = {
        "../evil": b"x",
        f"{CIFAR10_DIR}/../../evil_nested": b"x",
        str(absolute): b"x",
        f"{CIFAR10_DIR}/data_batch_1/../../../evil_batch": b"x",
    }
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz({**hostile, **members}))
    workdir = tmp_path / "a" / "b" / "cwd"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    path = download_dataset("cifar10", tmp_path / "a" / "b" / "data", url=url, md5=md5, progress=False)
    assert np.array_equal(_load_npz(path)[0], images)
    assert not absolute.exists()
    assert [p for p in tmp_path.rglob("*evil*")] == []
    assert list(workdir.iterdir()) == []


def test_a_training_member_that_is_a_link_is_refused(server, tmp_path):
    members, _, _ = _cifar10_members()
    del members[f"{CIFAR10_DIR}/data_batch_1"]
    archive = _tar_gz(members, links={f"{CIFAR10_DIR}/data_batch_1": "test_batch"})
    url, md5 = server.publish("cifar-10-python.tar.gz", archive)
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="data_batch_1.*not a regular file"):
        download_dataset("cifar10", destination, url=url, md5=md5, progress=False)
    assert list(destination.iterdir()) == []


def test_a_missing_training_member_is_refused(server, tmp_path):
    members, _, _ = _cifar10_members(batches=4)
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="no member 'cifar-10-batches-py/data_batch_5'"):
        download_dataset("cifar10", destination, url=url, md5=md5, progress=False)
    assert list(destination.iterdir()) == []


class _Touch:
    """A pickle payload that would create a file if an ordinary unpickler loaded it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickle_that_runs_code_is_refused_without_running_it(server, tmp_path):
    members, _, _ = _cifar10_members()
    marker = tmp_path / "pwned"
    members[f"{CIFAR10_DIR}/data_batch_3"] = pickle.dumps({"data": _Touch(marker), "labels": []}, protocol=2)
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="data_batch_3.*not a loadable CIFAR batch.*refusing"):
        download_dataset("cifar10", destination, url=url, md5=md5, progress=False)
    assert not marker.exists()
    assert list(destination.iterdir()) == []


def test_a_batch_with_out_of_range_labels_is_refused(server, tmp_path):
    members, _, _ = _cifar10_members()
    members[f"{CIFAR10_DIR}/data_batch_2"] = _batch_pickle(_images(3, seed=5), {"labels": [0, 10, 1]})
    url, md5 = server.publish("cifar-10-python.tar.gz", _tar_gz(members))
    with pytest.raises(DownloadError, match="data_batch_2.*labels outside 0..9"):
        download_dataset("cifar10", tmp_path / "data", url=url, md5=md5, progress=False)


def test_a_file_that_is_not_a_tar_gz_is_refused(server, tmp_path):
    url, md5 = server.publish("cifar-10-python.tar.gz", b"<html>not an archive</html>")
    destination = tmp_path / "data"
    with pytest.raises(DownloadError, match="not a readable .tar.gz"):
        download_dataset("cifar10", destination, url=url, md5=md5, progress=False)
    assert list(destination.iterdir()) == []


def test_data_download_command_stores_the_set_and_makes_it_the_datasets_data(server, tmp_path):
    """`nasscore data download` end to end: download, check, convert, then store in the database."""
    import os
    import subprocess
    import sys

    members, images, labels = _cifar100_members()
    url, md5 = server.publish("cifar-100-python.tar.gz", _tar_gz(members))
    nasscore = str(Path(sys.executable).with_name("nasscore"))
    env = os.environ | {"NASSCORE_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [nasscore, "data", "download", "cifar100", "--url", url, "--md5", md5],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "home" / "data" / "cifar100.npz").is_file()
    listing = subprocess.run([nasscore, "data", "list"], env=env, capture_output=True, text=True, timeout=300)
    [row] = [line for line in listing.stdout.splitlines() if line.startswith("cifar100 ")]
    assert row.split()[1] == "60"
    wrong = subprocess.run(
        [nasscore, "data", "download", "cifar100", "--url", url, "--md5", "0" * 32],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode == 1 and "nasscore: error:" in wrong.stderr and "MD5" in wrong.stderr
