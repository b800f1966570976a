"""Cancel latency through the service: jobs encoding under gunicorn + `runworker` (as `make run` starts
them) are cancelled over HTTP. For each: from the request to the status `cancelled` (the API answers with
it), and to the exit of the job's FFmpeg (watched by its job tag). Prints p50 and max and adds them to
bench/results.json (key "cancel_service"); asserts nothing.

Run: .venv/bin/python bench/cancel_service.py [--runs 10] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from jobs.worker.procs import tagged_processes  # noqa: E402
from tests.media import make_clip  # noqa: E402
from tests.workers import wait_for  # noqa: E402


def one_cancel(service: Service, source: Path) -> tuple[float, float]:
    with source.open("rb") as video:
        job = service.http.post(
            f"{service.url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": 3}
        ).json()
    url = f"{service.url}/api/jobs/{job['id']}/"
    # Encoding for real: FFmpeg started and its progress reached the row.
    wait_for(
        lambda: service.http.get(url).json()["progress"] > 0 and tagged_processes(job["id"]),
        timeout=60,
        interval=0.01,
        message="the job to encode",
    )
    started = time.monotonic()
    answer = service.http.post(f"{url}cancel/").json()
    to_status = time.monotonic() - started
    assert answer["status"] == "cancelled", answer
    wait_for(lambda: not tagged_processes(job["id"]), timeout=30, interval=0.01, message="FFmpeg to exit")
    return to_status, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.runs = 1
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-cancel-"))
    try:
        source = make_clip(folder / "long.mp4", seconds=60, size="640x360")
        service = Service(folder / "service", MAX_ACTIVE_JOBS_PER_USER="1000")
        try:
            timings = [one_cancel(service, source) for _ in range(args.runs)]
        finally:
            service.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    to_status = [status for status, _ in timings]
    to_exit = [exit_ for _, exit_ in timings]
    figures = {
        "runs": args.runs,
        "kill_grace_seconds": settings.KILL_GRACE_SECONDS,
        "to_status_p50_seconds": round(statistics.median(to_status), 3),
        "to_status_max_seconds": round(max(to_status), 3),
        "to_ffmpeg_exit_p50_seconds": round(statistics.median(to_exit), 3),
        "to_ffmpeg_exit_max_seconds": round(max(to_exit), 3),
    }
    print(
        f"{args.runs} cancels of encoding jobs over HTTP: to the status cancelled p50 "
        f"{figures['to_status_p50_seconds']} s, max {figures['to_status_max_seconds']} s; to FFmpeg's exit p50 "
        f"{figures['to_ffmpeg_exit_p50_seconds']} s, max {figures['to_ffmpeg_exit_max_seconds']} s"
    )
    record("cancel_service", figures, args.results)


if __name__ == "__main__":
    main()
