"""Status polling under load: concurrent clients poll GET /api/jobs/{id}/ against gunicorn (as `make run`
starts it) while a job encodes. Prints requests/s, p50, p99 and errors, and adds them to bench/results.json
(key "polling"); asserts nothing.

The clients are wrk's connections (Debian's wrk, `make system-packages`; the script is bench/polling.lua):
a load generator in C, so that the figures are the server's and not a Python client's own (50 Python
threads queueing for their GIL put tens of milliseconds on every answer here). Latency runs from a
request's first byte sent to its answer's last byte received.

Two rounds, each with its own job encoding and after 2 s of untimed requests that warm every web worker
thread up: every client polls about once every `--interval` seconds (1 s:
twice as often as the pages, which start at 2 s and back off to 10 s; each wait is drawn from 0.5x-1.5x
the interval, as independent clients do not poll in step); then every client polls back to back, which
measures the most requests per second the web server answers (in that round each answer waits for the
ones ahead of it, so its latencies are queueing, 50 clients / throughput, not service time).

Run: .venv/bin/python bench/polling.py [--clients 50] [--seconds 20] [--interval 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from tests.media import make_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's polls")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.seconds = 3, 2
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
    # Untimed: every thread of every web worker answers its first requests (lazy imports, its database
    # connection) before the round starts, so the figures are the steady state, not gunicorn's start.
    wrk(service, url, args.clients, WARM_UP_SECONDS, 0.0)
    measured = wrk(service, url, args.clients, args.seconds, interval)
    status = service.http.get(url).json()["status"]
    service.http.post(f"{url}cancel/")
    errors = {kind: count for kind, count in measured["errors"].items() if count}
    if not measured["requests"]:
        raise SystemExit(f"no request was answered: {errors}")
    figures = {
        "clients": args.clients,
        "seconds": args.seconds,
        "interval": interval,
        "requests_per_second": round(measured["requests"] / (measured["duration_us"] / 1e6), 1),
        **{f"{name}_ms": round(measured[f"{name}_us"] / 1000, 1) for name in ("p50", "p90", "p99", "max")},
        "errors": sum(errors.values()),
        "error_kinds": sorted(errors),
        "job_status_at_the_end": status,
    }
    pace = f"each about every {interval:g} s" if interval else "back to back"
    print(
        f"{args.clients} clients ({pace}) for {args.seconds:g} s while a job encodes ({status} at the end): "
        f"{figures['requests_per_second']} requests/s, p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, {figures['errors']} errors {errors or ''}",
        flush=True,
    )
    return figures


WARM_UP_SECONDS = 2.0


def wrk(service: Service, url: str, clients: int, seconds: float, interval: float) -> dict:
    """wrk's figures for `clients` connections polling `url` for `seconds` (bench/polling.lua)."""
    run = subprocess.run(
        ["wrk", "--threads", str(min(2, clients)), "--connections", str(clients), "--duration", f"{round(seconds)}s",
         "--timeout", "10s", "--script", str(ROOT / "bench" / "polling.lua"),
         "--header", f"Authorization: {service.http.headers['Authorization']}", url, "--", str(int(interval * 1000))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
