"""`make screenshots`: a PNG of each dashboard page, for a person to look at (not committed).

It runs the real service on a throwaway SQLite database, scores a seeded sample of NB201 cells through a
batch (a narrow network on the CIFAR-10 images shipped with nasscore, so it takes a minute on a laptop
CPU), photographs the batches page while that batch runs, imports the benchmark's accuracies when a
NAS-Bench-201 accuracy table is at hand, and photographs the leaderboard, the correlation report and the
top architecture's page in a headless Chromium.

    .venv/bin/python -m app.web.screenshots [--out screenshots] [--cells 120] [--accuracies CSV]
"""

import argparse
import csv
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from app.api.app import create_app
from app.db.migrations import upgrade
from app.settings import Settings
from app.web.browser import chromium_missing, console_errors, headless_chromium, save_full_page

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_ACCURACIES = REPO_ROOT.parent / "shared" / "data" / "nb201" / "nb201_cifar10_test_acc.csv"
# Real images, a narrow network: every default proxy on a cell in a fraction of a second.
CONFIG = {"data": "real", "batch_size": 32, "channels": 8, "cells_per_stage": 1}
BENCHMARK_SOURCE = "nb201-benchmark"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("screenshots"), help="folder the PNGs go to")
    parser.add_argument("--cells", type=int, default=120, help="NB201 cells the batch scores (seeded sample)")
    parser.add_argument("--workers", type=int, default=2, help="scoring worker processes")
    parser.add_argument(
        "--accuracies",
        type=Path,
        default=BENCHMARK_ACCURACIES,
        help="CSV with NB201 columns index, arch, cifar10_test_acc (the correlation page stays empty without it)",
    )
    args = parser.parse_args(argv)
    missing = chromium_missing()
    if missing:
        parser.error(f"no headless browser: {missing}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nasscore-screenshots-") as home, serve(Path(home), args.workers) as client:
        for page in photograph(client, args.out, args.cells, args.accuracies):
            print(f"wrote {page}")


@contextmanager
def serve(home: Path, workers: int) -> Iterator[httpx.Client]:
    """The real app under uvicorn on a free loopback port, with a fresh database under `home`."""
    database_url = f"sqlite:///{home / 'nasscore.db'}"
    upgrade(database_url)
    settings = Settings(home=home, database_url=database_url, workers=workers, poll_seconds=0.2)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, 180, "the server to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            _wait(lambda: _ready(client), 180, "/readyz")
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def photograph(client: httpx.Client, out: Path, cells: int, accuracies: Path) -> Iterator[Path]:
    """Score, import, and save one PNG per page; yields each file as it is written. The batches page shows
    a finished batch, the main one running and one queued behind it (cancelled once photographed)."""
    finished = _start_batch(client, {"sample": {"n": 8, "seed": 1}})
    _wait(lambda: client.get(finished["url"]).json()["status"] == "done", 600, "the first batch")
    batch = _start_batch(client, {"sample": {"n": cells, "seed": 0}})
    queued = _start_batch(client, {"sample": {"n": cells // 2, "seed": 2}})
    base = str(client.base_url)
    with headless_chromium() as browser:
        browser.get(f"{base}/batches")
        _wait(lambda: client.get(batch["url"]).json()["done"] >= cells // 3, 900, "a third of the batch")
        time.sleep(1.5)  # the page polls once a second
        yield _shoot(browser, out / "batches.png")
        client.delete(queued["url"]).raise_for_status()
        _wait(lambda: client.get(batch["url"]).json()["status"] == "done", 1800, "the batch to finish")
        if accuracies.exists():
            _import_accuracies(client, accuracies)
        else:
            print(f"no accuracy table at {accuracies}: the correlation page will say so")
        population = batch["links"]["leaderboard"].split("?", 1)[1]
        top = client.get(f"/v1/leaderboard?{population}&limit=1").json()["items"][0]
        for name, path in (
            ("leaderboard", f"/?{population}"),
            ("correlations", f"/correlations?{population}"),
            ("architecture", f"/architectures/{top['id']}"),
        ):
            browser.get(f"{base}{path}")
            yield _shoot(browser, out / f"{name}.png")


def _start_batch(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/batches", json={"config": CONFIG, **body})
    response.raise_for_status()
    batch: dict[str, Any] = response.json()
    return batch


def _shoot(browser: "Chrome", path: Path) -> Path:
    errors = console_errors(browser)
    if errors:
        raise SystemExit(f"{browser.current_url} logged console errors: {errors}")
    save_full_page(browser, path)
    return path


def _import_accuracies(client: httpx.Client, table: Path) -> None:
    """The benchmark's CIFAR-10 test accuracies of every cell, posted as the API's users post them."""
    with table.open(newline="") as rows:
        body = [
            {
                "arch": row["arch"],
                "dataset": "cifar10",
                "accuracy": float(row["cifar10_test_acc"]),
                "source": BENCHMARK_SOURCE,
                "benchmark_index": int(row["index"]),
            }
            for row in csv.DictReader(rows)
        ]
    client.post("/v1/observations", json=body).raise_for_status()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


if __name__ == "__main__":
    main()
