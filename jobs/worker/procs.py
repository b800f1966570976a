"""Finding FFmpeg processes by the VIDEOJOBS_JOB (VIDEOJOBS_ATTEMPT, VIDEOJOBS_PART) tags in their environment."""

from __future__ import annotations

import logging

import psutil

from jobs.ffmpeg import ATTEMPT_ENV, JOB_ENV, PART_ENV

logger = logging.getLogger(__name__)


def tagged_processes(
    job_id: str | None = None, attempt: int | None = None, part: str | None = None
) -> list[psutil.Process]:
    """Live processes started for a job (any job when job_id is None), for one run of it, or for one claim
    of one of its parts (jobs.worker.video_run.Part.token); zombies included."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            environment = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        tag = environment.get(JOB_ENV)
        if not tag or (job_id is not None and tag != job_id):
            continue
        if attempt is not None and environment.get(ATTEMPT_ENV) != str(attempt):
            continue
        if part is None or environment.get(PART_ENV) == part:
            found.append(proc)
    return found


def kill_tagged(job_id: str, attempt: int | None = None, part: str | None = None) -> int:
    """SIGKILL every process tagged with the job (with `attempt`: of that run only; with `part`: of that
    part's claim only); returns how many. Sees this machine's processes only."""
    killed = 0
    for proc in tagged_processes(job_id, attempt, part):
        try:
            proc.kill()
            proc.wait(timeout=5)
            killed += 1
            logger.warning("job %s: killed leftover process pid %s", job_id, proc.pid)
        except psutil.NoSuchProcess:
            continue
        except psutil.TimeoutExpired:
            logger.error("job %s: process pid %s did not die", job_id, proc.pid)
    return killed
