"""Live progress under load: STREAMS open event streams (GET /api/jobs/{id}/events/) and POLLERS clients
polling the job JSON with If-None-Match, against the service as `make run` starts it, while a job encodes.
Prints, and adds to bench/results.json (key "events"); asserts nothing:

- how long each change takes to reach each stream (p50, p99, max): the bench renames the job (PATCH) every
  second, and every stream's next event carrying that name is timed from the PATCH's answer;
- the pollers' answer times (p50, p99) and errors, 200s and 304s;
- the CPU a 304 costs the web processes: 1,000 of them back to back on one connection, less the same
  time's CPU with none (once the round is over and the job cancelled, so that it no longer changes);
- the web processes' resident memory at the start and at the end.

Every client is a coroutine of one asyncio loop in this process, each on its own connection.

Run: .venv/bin/python bench/events.py [--streams 200] [--pollers 50] [--seconds 20] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
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

VARIATIONS = 10  # enough work that the job still encodes when the round ends (the figures say its status)
COST_REQUESTS = 1000
WARM_UP_SECONDS = 5  # the RSS from then on: every thread of the pool has started, every stream is open
NAME = re.compile(r'"name":"(bench rename [0-9]+)"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.streams, args.pollers, args.seconds = 5, 3, 3
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-events-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    source = make_clip(folder / "long.mp4", seconds=2 if args.smoke else 60, size="640x360")
    # One user opens every stream here: the per-user bound (MAX_STREAMS_PER_USER) is not what is measured.
    service = Service(folder / "service", MAX_STREAMS_PER_USER=str(args.streams + 10))
    try:
        with source.open("rb") as video:
            job = service.http.post(
                f"{service.url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": VARIATIONS}
            ).json()
        figures = asyncio.run(measure(service, job["id"], args))
    finally:
        service.stop()
    print(json.dumps(figures, indent=2), flush=True)
    print(
        f"{args.streams} streams + {args.pollers} pollers for {args.seconds} s while a job encodes "
        f"({figures['job_status_at_the_end']} at the end): a change reached every stream in p50 "
        f"{figures['change_p50_ms']} ms, p99 {figures['change_p99_ms']} ms, max {figures['change_max_ms']} ms "
        f"({figures['changes_timed']} timed, {figures['changes_missed']} missed); the pollers: p50 "
        f"{figures['poll_p50_ms']} ms, p99 {figures['poll_p99_ms']} ms, {figures['poll_errors']} errors; a 304 "
        f"costs {figures['cpu_ms_per_304']} ms of CPU; web RSS {figures['rss_start_mb']} MB before the streams, "
        f"{figures['rss_after_warm_up_mb']} MB after {WARM_UP_SECONDS} s, {figures['rss_end_mb']} MB at the end "
        f"(at most {figures['rss_max_mb']} MB)",
        flush=True,
    )
    record(
        "events", {**figures, "streams": args.streams, "pollers": args.pollers, "cpus": os.cpu_count()}, args.results
    )


async def measure(service: Service, job_id: str, args) -> dict:
    url = f"{service.url}/api/jobs/{job_id}/"
    authorization = service.http.headers["Authorization"]
    rss_start = _rss(service)
    renamed: dict[str, float] = {}  # name -> when the PATCH that set it was answered
    arrivals: list[dict[str, float]] = [{} for _ in range(args.streams)]  # per stream: name -> when it came
    opened = [asyncio.Event() for _ in range(args.streams)]
    streams = [
        asyncio.create_task(_stream(f"{url}events/", authorization, arrivals[n], opened[n]))
        for n in range(args.streams)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 60)
    end = time.monotonic() + args.seconds
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    pollers = [asyncio.create_task(_poller(url, authorization, end, latencies, statuses)) for _ in range(args.pollers)]
    rss: list[float] = []
    sampler = asyncio.create_task(_sample_rss(service, end, rss))
    loop = asyncio.get_running_loop()
    number = 0
    while time.monotonic() < end - 1.5:  # the last rename still has time to arrive
        number += 1
        name = f"bench rename {number}"
        await loop.run_in_executor(
            None, lambda name=name: service.http.patch(url, json={"name": name}).raise_for_status()
        )
        renamed[name] = time.monotonic()
        await asyncio.sleep(1)
    await asyncio.gather(*pollers, sampler)
    status = service.http.get(url).json()["status"]
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    # The CPU of a 304 once the job no longer changes: cancelled, its streams ended.
    service.http.post(f"{url}cancel/")
    while service.http.get(url).json()["status"] in ("queued", "processing"):
        await asyncio.sleep(0.2)
    cost = await _cpu_per_304(service, url, authorization)
    delays = sorted(arrival[name] - at for arrival in arrivals for name, at in renamed.items() if name in arrival)
    missed = sum(1 for arrival in arrivals for name in renamed if name not in arrival)
    polls = sorted(latencies)
    return {
        "seconds": args.seconds,
        "changes_timed": len(delays),
        "changes_missed": missed,
        **{f"change_{key}_ms": value for key, value in _percentiles(delays).items()},
        "polls": len(polls),
        **{f"poll_{key}_ms": value for key, value in _percentiles(polls).items()},
        "poll_statuses": statuses,
        "poll_errors": sum(count for status, count in statuses.items() if status not in ("200", "304")),
        "cpu_ms_per_304": cost,
        "rss_start_mb": rss_start,  # before the streams opened
        "rss_after_warm_up_mb": rss[min(WARM_UP_SECONDS, len(rss) - 1)] if rss else 0.0,
        "rss_max_mb": max(rss, default=0.0),
        "rss_end_mb": rss[-1] if rss else 0.0,
        "job_status_at_the_end": status,
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    at = lambda share: values[min(len(values) - 1, int(share * len(values)))]  # noqa: E731
    return {"p50": round(at(0.5) * 1000, 1), "p99": round(at(0.99) * 1000, 1), "max": round(values[-1] * 1000, 1)}


async def _sample_rss(service: Service, end: float, samples: list[float]) -> None:
    """The web processes' RSS once a second through the round."""
    while time.monotonic() < end:
        samples.append(_rss(service))
        await asyncio.sleep(1)


def _rss(service: Service) -> float:
    return round(sum(process.memory_info().rss for process in service.web_processes()) / 2**20, 1)


async def _request(url: str, authorization: str, extra: str = "") -> tuple:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {authorization}\r\n{extra}\r\n".encode()
    )
    return reader, writer


async def _stream(url: str, authorization: str, arrivals: dict[str, float], opened: asyncio.Event) -> None:
    """One event stream: when each name first arrives in a `job` event."""
    reader, writer = await _request(url, authorization)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"the stream was refused: {head[:200]!r}")
        event = ""
        while line := (await reader.readline()).decode():
            line = line.rstrip("\r\n")
            if not all(c in "0123456789abcdefABCDEF" for c in line) or not line:  # not a chunk-size line
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "job":
                    opened.set()
                    # Not json.loads: 200 streams' documents parsed here would slow the pollers' own loop.
                    if found := NAME.search(line):
                        arrivals.setdefault(found[1], time.monotonic())
    finally:
        writer.close()


async def _poller(url: str, authorization: str, end: float, latencies: list[float], statuses: dict) -> None:
    """A page's poll, about once a second, sending back the ETag it last got."""
    await asyncio.sleep(random.uniform(0, 1))
    tag = ""
    while time.monotonic() < end:
        started = time.perf_counter()
        reader, writer = await _request(
            url, authorization, f"If-None-Match: {tag}\r\nConnection: close\r\n" if tag else "Connection: close\r\n"
        )
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            await reader.read()  # to the end: Connection: close
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            continue
        finally:
            writer.close()
        latencies.append(time.perf_counter() - started)
        status = head.split(" ", 2)[1]
        statuses[status] = statuses.get(status, 0) + 1
        tag = next(
            (line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.lower().startswith("etag:")), tag
        )
        await asyncio.sleep(random.uniform(0.5, 1.5))


async def _cpu_per_304(service: Service, url: str, authorization: str) -> float:
    """Milliseconds of the web processes' CPU per 304, less their CPU for the same time without requests."""
    tag = service.http.get(url).headers["ETag"]
    parts = urlsplit(url)
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {authorization}\r\n"
        f"If-None-Match: {tag}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    busy_started, cpu_started = time.monotonic(), _cpu(service)
    for _ in range(COST_REQUESTS):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 304 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"not a 304: {head[:200]!r}")
    busy = _cpu(service) - cpu_started
    writer.close()
    seconds = time.monotonic() - busy_started
    idle_started = _cpu(service)
    await asyncio.sleep(seconds)
    idle = _cpu(service) - idle_started
    return round(max(busy - idle, 0) / COST_REQUESTS * 1000, 3)


def _cpu(service: Service) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in service.web_processes())


if __name__ == "__main__":
    main()
