"""Status polling under load: concurrent clients poll GET /api/jobs/{id}/ against gunicorn (as `make run`
starts it) while a job encodes. Prints requests/s, p50, p99 and errors, and adds them to bench/results.json
(key "polling"); asserts nothing.

Two rounds, each with its own job encoding and after 2 s of untimed requests that warm every web worker
thread up:
- paced: every client polls about once every `--interval` seconds (1 s: twice as often as the pages, which
  start at 2 s and back off to 10 s). The clients are independent: each starts at a random moment within
  the first interval and draws each wait from 0.5x-1.5x the interval. They are coroutines of one asyncio
  loop in this process (`paced_round`), each with its own keep-alive connection; latency runs from a
  request's first byte sent to its answer's last byte received. At 50 requests a second the loop is idle
  nearly all the time, so its own delay stays out of the figures (50 Python threads did not: they queued for
  their GIL). wrk could not pace this way: its connections all send their first request in the same
  millisecond, and that one burst of 50 made the whole p99 of a 20 s round.
- back to back: every client polls again as soon as it has its answer, which measures the most requests
  per second the web server answers (each answer waits for the ones ahead of it, so these latencies are
  queueing, 50 clients / throughput, not service time). The load is wrk's connections (Debian's wrk,
  `make system-packages`; the script is bench/polling.lua), a load generator in C.

Run: .venv/bin/python bench/polling.py [--clients 50] [--seconds 20] [--interval 1] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

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
        floor = measure(service, source, args, args.interval, poll=MISSING_JOB)
    finally:
        service.stop()
    figures = {**paced, "back_to_back": back_to_back, "floor": floor, "cpus": os.cpu_count()}
    record("polling", figures, args.results)


# The floor: what the same paced clients measure for the cheapest answer of an authenticated API request,
# a 404 for a job id that does not exist (the token's query and one query for the job), as a job encodes.
MISSING_JOB = "0" * 32


def measure(service: Service, source: Path, args, interval: float, poll: str = "") -> dict:
    """One round: a new job encodes while the clients poll it (or the job id `poll`)."""
    with source.open("rb") as video:
        job = service.http.post(
            f"{service.url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": VARIATIONS}
        ).json()
    job_url = f"{service.url}/api/jobs/{job['id']}/"
    url = f"{service.url}/api/jobs/{poll}/" if poll else job_url
    # Untimed: every thread of every web worker answers its first requests (lazy imports, its database
    # connection) before the round starts, so the figures are the steady state, not gunicorn's start.
    wrk(service, url, args.clients, WARM_UP_SECONDS)
    if interval:
        expected = "404" if poll else "200"
        measured = asyncio.run(paced_round(url, service.http.headers["Authorization"], args, interval, expected))
    else:
        measured = wrk(service, url, args.clients, args.seconds)
    status = service.http.get(job_url).json()["status"]
    service.http.post(f"{job_url}cancel/")
    if not measured["requests"]:
        raise SystemExit(f"no request was answered: {measured['errors']}")
    figures = {
        "clients": args.clients,
        "seconds": args.seconds,
        "interval": interval,
        "requests_per_second": round(measured["requests"] / measured["seconds"], 1),
        **{f"{name}_ms": round(measured[f"{name}_ms"], 1) for name in ("p50", "p90", "p99", "max")},
        "errors": sum(measured["errors"].values()),
        "error_kinds": sorted(measured["errors"]),
        "job_status_at_the_end": status,
    }
    pace = (f"each about every {interval:g} s" if interval else "back to back") + (", a missing job" if poll else "")
    print(
        f"{args.clients} clients ({pace}) for {args.seconds:g} s while a job encodes ({status} at the end): "
        f"{figures['requests_per_second']} requests/s, p50 {figures['p50_ms']} ms, p90 {figures['p90_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, {figures['errors']} errors "
        f"{measured['errors'] or ''}",
        flush=True,
    )
    return figures


async def paced_round(url: str, authorization: str, args, interval: float, expected: str) -> dict:
    """`args.clients` independent clients polling `url` for `args.seconds`, each about every `interval` s."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    started = time.monotonic()
    end = started + args.seconds
    await asyncio.gather(*(_paced_client(url, authorization, interval, end, expected, latencies, errors)
                           for _ in range(args.clients)))  # fmt: skip
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "requests": len(latencies),
        "seconds": time.monotonic() - started,
        **{f"p{round(share * 100)}_ms": percentile(share) for share in (0.5, 0.9, 0.99)},
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "errors": errors,
    }


async def _paced_client(url, authorization, interval, end, expected, latencies, errors) -> None:
    """One client: HTTP/1.1 keep-alive GETs, a random first moment and random waits (see the docstring)."""
    parts = urlsplit(url)
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {authorization}\r\n\r\n"
    await asyncio.sleep(random.uniform(0, interval))
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while time.monotonic() < end:
            sent = time.perf_counter()
            writer.write(request.encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            length = next(int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            status = head.split(" ", 2)[1]
            if status != expected:
                errors[status] = errors.get(status, 0) + 1
            if "connection: close" in head:  # the server ended the keep-alive: a new connection, as a client would
                writer.close()
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            await asyncio.sleep(random.uniform(0.5, 1.5) * interval)
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


WARM_UP_SECONDS = 2.0
# Enough work that the job still encodes when a round ends (checked: the round reports the job's status).
VARIATIONS = 10


def wrk(service: Service, url: str, clients: int, seconds: float) -> dict:
    """wrk's figures for `clients` connections polling `url` back to back for `seconds` (bench/polling.lua)."""
    run = subprocess.run(
        ["wrk", "--threads", str(min(2, clients)), "--connections", str(clients), "--duration", f"{round(seconds)}s",
         "--timeout", "10s", "--script", str(ROOT / "bench" / "polling.lua"),
         "--header", f"Authorization: {service.http.headers['Authorization']}", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    return {
        "requests": figures["requests"],
        "seconds": figures["duration_us"] / 1e6,
        **{f"{name}_ms": figures[f"{name}_us"] / 1000 for name in ("p50", "p90", "p99", "max")},
        "errors": {kind: count for kind, count in figures["errors"].items() if count},
    }


if __name__ == "__main__":
    main()
