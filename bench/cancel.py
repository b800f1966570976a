"""Cancel latency: from the cancel request to FFmpeg's exit, normal case (q) and each escalation stage.

The worker side is the real one (jobs.ffmpeg.encode asking should_stop every
0.05 s, then q -> SIGTERM -> SIGKILL); the "request" is the flag should_stop()
reads, set by the main thread, so the figure leaves out the worker's database
query (bench/cancel_service.py measures the whole path). Escalation uses
tests/standin_ffmpeg.py, a process that ignores q (and SIGTERM). Prints
figures; no asserts.

Run: .venv/bin/python bench/cancel.py [runs=10]
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from bench.results import record  # noqa: E402
from jobs import ffmpeg  # noqa: E402
from jobs.ffmpeg.effects import effects_for  # noqa: E402
from tests.media import make_clip  # noqa: E402


class StopLog(logging.Handler):
    """Collects 'stopped by <stage> in <s> s' from jobs.ffmpeg."""

    def __init__(self):
        super().__init__()
        self.stops: list[tuple[str, float]] = []

    def emit(self, record):
        match = re.search(r"stopped by (\w+) in ([\d.]+) s", record.getMessage())
        if match:
            self.stops.append((match.group(1), float(match.group(2))))


def one_cancel(source: Path, folder: Path) -> float:
    """Start an encode, wait until it reports progress, request the stop; seconds until FFmpeg is reaped."""
    requested = threading.Event()
    progressed = threading.Event()
    ended = {}

    def work():
        spec = ffmpeg.OutputSpec(folder / "out.mp4.part", effects_for(1, 0, 0).filter_chain())
        ffmpeg.encode(
            source, [spec], job_id="bench", on_progress=lambda s: progressed.set(), should_stop=requested.is_set
        )
        ended["at"] = time.monotonic()

    thread = threading.Thread(target=work)
    thread.start()
    progressed.wait(30)
    started = time.monotonic()
    requested.set()
    thread.join()
    return ended["at"] - started


def main(runs: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-"))
    source = make_clip(folder / "src.mp4", seconds=60, size="640x360")
    stop_log = StopLog()
    logging.getLogger("jobs.ffmpeg").addHandler(stop_log)
    logging.getLogger("jobs.ffmpeg").setLevel(logging.INFO)

    cases = [
        ("normal (real FFmpeg, q)", None, runs),
        ("ignores q", "ignore-q", 3),
        ("ignores SIGTERM", "ignore-term", 3),
    ]
    print(
        f"KILL_GRACE_SECONDS={settings.KILL_GRACE_SECONDS}, "
        f"should_stop asked every {ffmpeg.process.STOP_CHECK_INTERVAL} s, "
        f"FFmpeg's stats period (it reads q) {ffmpeg.command.STATS_PERIOD_SECONDS} s"
    )
    figures = {}
    for label, mode, count in cases:
        if mode:
            settings.FFMPEG_BINARY = str(ROOT / "tests" / "standin_ffmpeg.py")
            os.environ["STANDIN_MODE"] = mode
        stop_log.stops.clear()
        totals = [one_cancel(source, folder) for _ in range(count)]
        stages = sorted({stage for stage, _ in stop_log.stops})
        escalation = statistics.median(seconds for _, seconds in stop_log.stops)
        print(
            f"{label:26s} request -> exit: median {statistics.median(totals):.3f} s, "
            f"max {max(totals):.3f} s over {count}; stop() alone median {escalation:.3f} s; ended by {stages}"
        )
        figures[label] = {
            "runs": count,
            "p50_seconds": round(statistics.median(totals), 3),
            "max_seconds": round(max(totals), 3),
            "ended_by": stages,
        }
    if runs >= 10:  # the smoke run's figures are not kept
        record("cancel", {"kill_grace_seconds": settings.KILL_GRACE_SECONDS, **figures})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
