"""Status polling under load: concurrent clients poll GET /api/jobs/{id}/ against gunicorn (as `make run`
starts it) while a job encodes. Prints requests/s, p50, p99 and errors, and adds them to bench/results.json
(key "polling"); asserts nothing.

Two rounds, each with its own job encoding: every client polls once every `--interval` seconds (1 s: twice
as often as the pages, which start at 2 s and back off to 10 s), from a random start within the first
interval, as independent clients would; then every client polls back to back, which measures the most
requests per second the web server answers (in that round each answer waits for the ones ahead of it, so
its latencies are queueing, 50 clients / throughput, not service time).

Run: .venv/bin/python bench/polling.py [--clients 50] [--seconds 20] [--interval 1] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from tests.media import make_clip  # noqa: E402


def poll(url: str, token: str, until: float, interval: float, latencies: list[float], errors: list[str]) -> None:
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    next_poll = time.monotonic() + random.uniform(0, interval)
    while time.monotonic() < until:
        if interval:
            time.sleep(max(0.0, next_poll - time.monotonic()))
            next_poll += interval
        started = time.perf_counter()
        try:
            response = http.get(url, timeout=10)
            if response.status_code != 200:
                errors.append(str(response.status_code))
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's polls")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.seconds = 3, 1.0
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-polling-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    source = make_clip(folder / "long.mp4", seconds=2 if args.smoke else 60, size="640x360")
    service = Service(folder / "service")
    try:
        paced = measure(service, source, args, args.interval)
        back_to_back = measure(service, source, args, 0.0)
    finally:
        service.stop()
    figures = {**paced, "back_to_back": back_to_back, "cpus": os.cpu_count()}
    record("polling", figures, args.results)


def measure(service: Service, source: Path, args, interval: float) -> dict:
    """One round: a new job encodes while the clients poll it."""
    with source.open("rb") as video:
        job = service.http.post(
            f"{service.url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": 5}
        ).json()
    url = f"{service.url}/api/jobs/{job['id']}/"
    token = service.http.headers["Authorization"].split()[1]
    latencies: list[float] = []
    errors: list[str] = []
    until = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=poll, args=(url, token, until, interval, latencies, errors))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = service.http.get(url).json()["status"]
    service.http.post(f"{url}cancel/")
    if not latencies:
        raise SystemExit(f"every request failed: {sorted(set(errors))}")
    latencies.sort()
    figures = {
        "clients": args.clients,
        "seconds": args.seconds,
        "interval": interval,
        "requests_per_second": round(len(latencies) / args.seconds, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p90_ms": round(1000 * latencies[int(0.90 * len(latencies))], 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "job_status_at_the_end": status,
    }
    pace = f"each every {interval:g} s" if interval else "back to back"
    print(
        f"{args.clients} clients ({pace}) for {args.seconds:g} s while a job encodes ({status} at the end): "
        f"{figures['requests_per_second']} requests/s, p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, "
        f"{len(errors)} errors {sorted(set(errors)) or ''}",
        flush=True,
    )
    return figures


if __name__ == "__main__":
    main()
