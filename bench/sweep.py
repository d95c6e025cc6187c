"""A whole NB201 sweep through the real service path, and how well every proxy and preset then ranks the space.

Starts a real `nasscore serve` (fresh SQLite home, the shared CIFAR-10 batch as the operator's `cifar10.npz`,
`--workers` workers on `--device`), waits until every worker is warm, imports the benchmark's accuracies,
POSTs one batch — the whole space (`--all`) or a seeded sample (`--sample N`) — with the default
configuration and proxy set, and follows it with a progress bar. Meanwhile it samples the worker
processes' resident memory and the machine's CPU use from /proc. Then it reports:
- throughput: distinct models per hour (isomorphic cells are computed once), the batch's seconds per
  requested cell, and the projected time of the full space (its 6,466 isomorphism classes at the measured
  seconds per distinct model — for a sample, an extrapolation per class);
- CPU utilisation of the run, worker peak RSS and its growth from the first tenth of the run to its end;
- seconds per proxy per model (each proxy's own time plus its share of passes shared with others);
- Spearman ρ per class and per cell of every proxy and of every preset's vote (GET /v1/correlations), and
  the benchmark accuracy of each preset's top-1 and best-of-top-10 classes next to the space's best.
The report is printed and written as Markdown (`--report`, e.g. docs/sweep_nb201_cifar10_cpu.md).

    .venv/bin/python -m bench.sweep --all --workers 2 --report docs/sweep_nb201_cifar10_cpu.md
    .venv/bin/python -m bench.sweep --sample 300 --seed 0 --workers 2          # a quicker, extrapolated run
    .venv/bin/python -m bench.sweep --all --device cuda --workers-per-gpu 4    # on a GPU host: processes,
    .venv/bin/python -m bench.sweep --all --device cuda --cells-per-worker 4   # or CUDA streams in one process
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from tqdm import tqdm

from bench.service_throughput import NASSCORE, SHARED, Deployment, distinct_computations, serve

NB201_CLASSES = 6466  # isomorphism classes of the 15,625 NB201 cells
NB201_CELLS = 15625
SAMPLE_SECONDS = 2.0


@dataclass
class ResourceTrace:
    """Worker RSS (by PID) and machine CPU use, sampled from /proc while the batch runs."""

    server_pid: int
    rss_mib: dict[int, list[float]] = field(default_factory=dict)
    cpu_busy: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        before = _cpu_times()
        while not self._stop.wait(SAMPLE_SECONDS):
            for pid in _descendants(self.server_pid):
                rss = _rss_mib(pid)
                if rss is not None:
                    self.rss_mib.setdefault(pid, []).append(rss)
            now = _cpu_times()
            busy, total = now[0] - before[0], now[1] - before[1]
            if total > 0:
                self.cpu_busy.append(busy / total)
            before = now

    def workers(self) -> dict[int, list[float]]:
        """The worker processes: the descendants that held the most memory (the scoring processes)."""
        return {pid: trace for pid, trace in self.rss_mib.items() if max(trace) > 150}


def _cpu_times() -> tuple[float, float]:
    fields = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def import_accuracies(client: httpx.Client, csv_path: Path) -> int:
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        body = [
            {"arch": row["arch"], "dataset": "cifar10", "accuracy": float(row["cifar10_test_acc"]), "source": "nb201"}
            for row in chunk
        ]
        client.post("/v1/observations", json=body).raise_for_status()
    return len(rows)


def follow(client: httpx.Client, url: str) -> dict:
    """Poll the batch with a progress bar (rate and ETA) until it is done."""
    batch = client.get(url).json()
    with tqdm(total=batch["total"], unit="cell", smoothing=0.05) as bar:
        while batch["status"] not in ("done", "cancelled"):
            time.sleep(SAMPLE_SECONDS)
            batch = client.get(url).json()
            bar.update(batch["done"] + batch["failed"] - bar.n)
    return batch


def per_proxy_seconds(database_url: str) -> dict[str, float]:
    """Mean seconds per computed model of each proxy (rows copied to isomorphic cells are not counted)."""
    from sqlalchemy import func, select

    from app.db import Database
    from app.db.models import Score

    database = Database(database_url)
    try:
        with database.read_session() as session:
            query = (
                select(Score.proxy, func.avg(Score.seconds))
                .where(Score.computed_from_id == Score.architecture_id)
                .group_by(Score.proxy)
            )
            return {proxy: float(seconds) for proxy, seconds in session.execute(query)}
    finally:
        database.dispose()


def ranking_table(client: httpx.Client) -> list[dict]:
    """Per preset: the vote's ρ per class and per cell, its top-1 and best-of-top-10 accuracy; then every
    proxy's ρ (taken from the preset whose voters include it)."""
    from scorers.presets import PRESETS

    rows, seen = [], set()
    for preset in PRESETS:
        report = client.get("/v1/correlations", params={"preset": preset, "bootstrap": 0}).json()
        top = client.get("/v1/leaderboard", params={"preset": preset, "limit": 1}).json()["items"]
        for entry in report["correlations"]:
            name = f"vote: {preset}" if entry["kind"] == "vote" else entry["name"]
            if name in seen:
                continue
            seen.add(name)
            rows.append(
                {
                    "name": name,
                    "rho_class": entry["spearman_rho"],
                    "rho_cell": entry["per_cell"]["spearman_rho"],
                    "top1": top[0]["accuracy"] if entry["kind"] == "vote" and top else None,
                    "best_top10": entry["best_accuracy_top10"],
                    "best": entry["best_accuracy"],
                }
            )
    return rows


def _figure(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(
    args: argparse.Namespace, batch: dict, computed: int, trace: ResourceTrace, seconds: dict, rows: list[dict]
) -> str:
    started, finished = (datetime.fromisoformat(batch[key]) for key in ("started_at", "finished_at"))
    wall = (finished - started).total_seconds()
    per_model = wall / max(1, computed)
    projected = per_model * NB201_CLASSES
    workers = trace.workers()
    peaks = [max(values) for values in workers.values()]
    growth = [
        (values[-1] - values[len(values) // 10]) / values[len(values) // 10] * 100
        for values in workers.values()
        if len(values) >= 10
    ]
    cpu = sum(trace.cpu_busy) / len(trace.cpu_busy) * 100 if trace.cpu_busy else float("nan")
    scope = "the whole space" if args.all else f"a seeded sample of {args.sample} cells (seed {args.seed})"
    lines = [
        f"# NB201 sweep on {args.device} ({workers_line(args)}, {os.cpu_count()} CPUs)",
        "",
        f"Measured {datetime.now().date()} with `{args.command}`: {scope}, the default configuration "
        f"(CIFAR-10, batch 64, C=16, N=5) and proxy set, through a real `nasscore serve`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cells / distinct models scored | {batch['total']} / {computed} ({batch['failed']} failed) |",
        f"| wall time of the batch | {wall:.0f} s ({wall / 3600:.2f} h) |",
        f"| distinct models per hour | {3600 / per_model:.0f} |",
        f"| seconds per distinct model | {per_model:.3f} |",
        f"| projected full space ({NB201_CLASSES:,} classes) | {projected:.0f} s ({projected / 3600:.2f} h) |",
        f"| machine CPU utilisation during the run | {cpu:.0f} % |",
        f"| worker peak RSS | {', '.join(f'{peak:.0f} MiB' for peak in peaks) or '–'} |",
        f"| worker RSS growth (first tenth → end) | {', '.join(f'{g:+.1f} %' for g in growth) or '–'} |",
        "",
        "## Seconds per model, by proxy",
        "",
        "| proxy | seconds |",
        "|---|---|",
        *(f"| {proxy} | {value:.3f} |" for proxy, value in sorted(seconds.items(), key=lambda item: -item[1])),
        f"| **sum** | {sum(seconds.values()):.3f} |",
        "",
        "## Ranking quality against the benchmark's CIFAR-10 test accuracy",
        "",
        "| proxy or vote | ρ per class | ρ per cell | top-1 accuracy | best of top 10 | space's best |",
        "|---|---|---|---|---|---|",
        *(
            f"| {row['name']} | {_figure(row['rho_class'])} | {_figure(row['rho_cell'])} | "
            f"{_figure(row['top1'], 2)} | {_figure(row['best_top10'], 2)} | {_figure(row['best'], 2)} |"
            for row in rows
        ),
    ]
    return "\n".join(lines) + "\n"


def workers_line(args: argparse.Namespace) -> str:
    processes = f"{args.workers} worker(s)" if args.device == "cpu" else f"{args.workers_per_gpu} worker(s) per GPU"
    return processes + (f" × {args.cells_per_worker} cells at once" if args.cells_per_worker > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    selection = parser.add_mutually_exclusive_group(required=True)
    selection.add_argument("--all", action="store_true", help="every cell of NB201 (15,625)")
    selection.add_argument("--sample", type=int, help="a seeded sample of N cells, extrapolated per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--workers-per-gpu", type=int, default=1)
    parser.add_argument("--cells-per-worker", type=int, default=1, help="cells each worker scores at once")
    parser.add_argument("--npz", type=Path, default=SHARED / "cifar10" / "cifar10_train_3805.npz")
    parser.add_argument("--csv", type=Path, default=SHARED / "nb201" / "nb201_cifar10_test_acc.csv")
    parser.add_argument("--report", type=Path, help="write the Markdown report here too")
    args = parser.parse_args()
    args.command = "python -m bench.sweep " + " ".join(sys.argv[1:])
    database_url = f"sqlite:///{tempfile.mkdtemp(prefix='nasscore-sweep-')}/nasscore.db"
    env = os.environ | {"NASSCORE_DATABASE_URL": database_url}
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    deployment = Deployment(
        args.workers, device=args.device, workers_per_gpu=args.workers_per_gpu, cells_per_worker=args.cells_per_worker
    )
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    with serve(deployment, database_url, args.npz, "sweep") as (client, server_pid):
        print(f"imported {import_accuracies(client, args.csv):,} accuracies")
        selection_body = {"all": True} if args.all else {"sample": {"n": args.sample, "seed": args.seed}}
        created = client.post("/v1/batches", json={**selection_body, "dataset": "cifar10"})
        created.raise_for_status()
        trace = ResourceTrace(server_pid)
        trace.start()
        try:
            batch = follow(client, created.json()["url"])
        finally:
            trace.stop()
        rows = ranking_table(client)
    computed = distinct_computations(database_url)
    report = render(args, batch, computed, trace, per_proxy_seconds(database_url), rows)
    print(report)
    if args.report is not None:
        args.report.write_text(report)
        print(f"written to {args.report}")


if __name__ == "__main__":
    main()
