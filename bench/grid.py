"""Variations per minute through the real service, for each BATCH_SIZE and WORKERS, and a plot of them.

Each cell starts the service as `make run` does (gunicorn + `manage.py runworker`) with that BATCH_SIZE
and WORKERS, sends one job of generated clips (default: 2 videos of 5 s 1280x720 with stereo AAC, 10
variations each) over HTTP, and times it until its ZIP is downloaded; the figure is the median of
`--runs`. The plot (matplotlib, PNG) has one line per WORKERS value.

Prints its figures and writes them to bench/results.json (key "grid"); asserts nothing.

Run: .venv/bin/python bench/grid.py [--runs 1] [--plot docs/performance-grid.png] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from bench.throughput import machine, make_source  # noqa: E402

PLOT = ROOT / "docs" / "performance-grid.png"


def cell(sources: list[Path], variations: int, batch_size: int, workers: int, runs: int, folder: Path) -> float:
    """Variations per minute, median of `runs` jobs, through a service started for this cell."""
    service = Service(folder / f"service-b{batch_size}-w{workers}", workers=workers, batch_size=batch_size)
    try:
        seconds = statistics.median(service.run_job(sources, variations)[0] for _ in range(runs))
    finally:
        service.stop()
    return len(sources) * variations * 60 / seconds


def plot(rows: list[dict], path: Path, title: str) -> None:
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for workers in sorted({row["workers"] for row in rows}):
        line = sorted((row["batch_size"], row["variations_per_minute"]) for row in rows if row["workers"] == workers)
        axes.plot([x for x, _ in line], [y for _, y in line], marker="o", label=f"WORKERS={workers}")
    axes.set_xlabel("BATCH_SIZE (variations per FFmpeg process)")
    axes.set_ylabel("variations per minute")
    axes.set_title(title, fontsize=10)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, two cells: checks that the bench works")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-grid-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    if args.smoke:
        sources = [make_source(folder / f"small-{n}.mp4", "320x240", 1.0) for n in range(2)]
        variations, batch_sizes, worker_counts, label = 2, (1, 2), (1,), "2 videos of 1 s 320x240 x 2 variations"
    else:
        sources = [make_source(folder / f"clip-{n}.mp4", "1280x720", 5.0) for n in range(2)]
        variations, batch_sizes, worker_counts = 10, (1, 2, 5, 10), (1, 2)
        label = "2 videos of 5 s 1280x720 x 10 variations"
    rows = []
    for workers in worker_counts:
        for batch_size in batch_sizes:
            per_minute = cell(sources, variations, batch_size, workers, args.runs, folder)
            rows.append({"batch_size": batch_size, "workers": workers, "variations_per_minute": round(per_minute, 1)})
            print(f"WORKERS={workers} BATCH_SIZE={batch_size}: {per_minute:.1f} variations per minute", flush=True)
    cpus = os.cpu_count()
    plot(rows, args.plot, f"{label}, {cpus} cores")
    print(f"plot written to {args.plot}")
    record("grid", {"machine": machine(), "job": label, "runs": args.runs, "cells": rows}, args.results)
    print(f"written to {args.results}")


if __name__ == "__main__":
    main()
