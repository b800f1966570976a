"""Finding and killing leftover FFmpeg processes by their job tag."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from jobs import ffmpeg
from jobs.worker import procs
from tests.workers import wait_for


def _sleeper(tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, ffmpeg.JOB_ENV: tag}
    )


def test_kill_tagged_only_touches_the_job():
    mine, other = _sleeper("job-a"), _sleeper("job-b")
    try:
        wait_for(lambda: {p.pid for p in procs.tagged_processes()} >= {mine.pid, other.pid}, timeout=5)
        assert [p.pid for p in procs.tagged_processes("job-a")] == [mine.pid]
        assert procs.kill_tagged("job-a") == 1
        assert not psutil.pid_exists(mine.pid) and other.poll() is None
        assert procs.kill_tagged("job-a") == 0
    finally:
        for proc in (mine, other):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
