"""Finding FFmpeg processes by the VIDEOJOBS_JOB tag in their environment (psutil)."""

from __future__ import annotations

import logging

import psutil

from jobs.ffmpeg import JOB_ENV

logger = logging.getLogger(__name__)


def tagged_processes(job_id: str | None = None) -> list[psutil.Process]:
    """Live processes started for a job (any job when job_id is None); zombies included."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            tag = proc.environ().get(JOB_ENV)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if tag and (job_id is None or tag == job_id):
            found.append(proc)
    return found


def kill_tagged(job_id: str) -> int:
    """SIGKILL every process tagged with the job; returns how many were killed."""
    killed = 0
    for proc in tagged_processes(job_id):
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
