"""A real `manage.py qcluster` subprocess for tests, and polling with a deadline."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import imageio_ffmpeg
import psutil
from django.conf import settings
from django.db import connection

from jobs import storage
from jobs.worker.procs import tagged_processes
from videojobs import datadir

ROOT = Path(__file__).resolve().parent.parent
# A cluster's FFmpeg reads its input at the clip's own pace (tests/paced_ffmpeg.py): start_cluster(**PACED_FFMPEG).
PACED_FFMPEG = {
    "FFMPEG_BINARY": str(ROOT / "tests" / "paced_ffmpeg.py"),
    "VIDEOJOBS_REAL_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe(),
}


def encoding_processes(job, writing: bool = False) -> list:
    """The job's FFmpeg processes that encode a batch; with `writing`, once a .part has bytes."""
    if writing and not any(_size(p) for p in storage.outputs_dir(job.pk).glob("*.part")):
        return []
    return [proc for proc in tagged_processes(job.pk) if ".part" in command_line(proc)]


# Processes end while a test looks at them: every question below answers for a process that has gone.
def alive(process: psutil.Process) -> bool:
    """Running and not a zombie."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def command_line(process: psutil.Process) -> str:
    """Its command line, or "" for a process that has ended."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, message: str | Callable[[], str] = ""
) -> T:
    """Poll until predicate() is truthy; fail with `message` at the deadline. Never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {text or predicate}")
        time.sleep(interval)


def _database_url() -> str:
    """The test database, as a URL the subprocess's settings understand."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    def __init__(self, log_path: Path, **env: str):
        data_dir = Path(settings.JOBS_DIR).parent
        datadir.prepare(data_dir)  # what `make run` does before starting the processes
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "videojobs.settings",
            "DATABASE_URL": _database_url(),
            "DATA_DIR": str(data_dir),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # tasks are signed with it
            "WORKERS": "1",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the cluster, then SIGKILL for its whole process group (its workers do not watch their parent)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL only the cluster's main process, as an OOM killer or a crash would."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_all(self) -> None:
        """SIGKILL the whole cluster at once (main process, sentinel, workers), as a machine crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
