"""`manage.py runworker`: the django-q2 cluster (`qcluster`), stopped quickly and in order.

Two things go wrong when a process manager stops `qcluster` itself:
- honcho (what `make run` uses) signals the whole process group. The SIGTERM
  also reaches django-q2's sentinel, which leaves SIGTERM at its default
  action: it dies mid-stop and the main process waits for it until honcho's
  SIGKILL, 5 s later.
- A SIGTERM to the main process alone stops the cluster in order, but
  django-q2 then waits, without limit, for every running job to finish.

So the cluster runs here in a session of its own, and a SIGTERM, SIGINT or
SIGHUP to this command becomes a SIGTERM to the cluster's main process and to
each worker that is running a job. The workers are the children of the
sentinel (the main process's child); of them, the ones running a job, and only
those, catch SIGTERM (jobs.worker.tasks: the job is handed back to the queue, its
worker stops FFmpeg and takes its next task). FFmpeg, a worker's child, is
never signalled from here: its own worker stops it.

Before any signal, this command creates the stop file named in the cluster's
environment (jobs.services.enqueue.STOP_FILE_ENV): a worker handed a task after that,
one the cluster had fetched ahead, sends it back to the broker instead of
starting it. That also empties django-q2's local queue, without which its
stop waits forever (its pusher blocks on a full queue). Workers that started
a job anyway are signalled too. If this command is killed outright, the kernel
sends the cluster SIGTERM (`setpriv --pdeathsig`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.services.enqueue import STOP_FILE_ENV

logger = logging.getLogger(__name__)

SCAN_SECONDS = 0.1  # while stopping: how often to look for workers that started a job


def cluster_command() -> list[str]:
    command = [sys.executable, "-m", "django", "qcluster"]  # DJANGO_SETTINGS_MODULE is inherited
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux: the SigCgt mask in /proc/<pid>/status)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def stop_file_for(pid: int) -> Path:
    """Where runworker `pid` says its cluster is stopping: in DATA_DIR, which only the service's user can
    write, not at a name anyone can create first in the shared temporary folder."""
    return Path(settings.DATA_DIR) / "runworker" / f"{pid}.stopping"


class Command(BaseCommand):
    help = "Run the worker cluster (qcluster); a stop signal stops it at once, handing running jobs back."

    def handle(self, *args, **options):
        stop_file = stop_file_for(os.getpid())
        stop_file.parent.mkdir(mode=0o700, exist_ok=True)
        stop_file.unlink(missing_ok=True)
        try:
            self._run(stop_file)
        finally:
            stop_file.unlink(missing_ok=True)

    def _run(self, stop_file: Path) -> None:
        environment = {**os.environ, STOP_FILE_ENV: str(stop_file)}
        cluster = subprocess.Popen(cluster_command(), start_new_session=True, env=environment)
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, stop)
        signalled: set[int] = set()
        while True:
            try:
                returncode = cluster.wait(timeout=SCAN_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            if stopping:
                stop_file.touch()  # before any signal: from now on the workers start nothing new
                self._signal_stop(cluster.pid, signalled)
        if returncode:
            sys.exit(returncode if returncode > 0 else 128 - returncode)

    def _signal_stop(self, main_pid: int, signalled: set[int]) -> None:
        """SIGTERM the main process once, then each worker (a child of the sentinel) that catches SIGTERM,
        that is, runs a job, each once."""
        try:
            main = psutil.Process(main_pid)
            workers = [worker for sentinel in main.children() for worker in sentinel.children()]
        except psutil.NoSuchProcess:
            return
        for process in [main, *workers]:
            if process.pid in signalled or not (process.pid == main_pid or catches_sigterm(process.pid)):
                continue
            signalled.add(process.pid)
            try:
                process.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                continue
            logger.info(
                "runworker: sent SIGTERM to %s process %s",
                "cluster" if process.pid == main_pid else "worker",
                process.pid,
            )
