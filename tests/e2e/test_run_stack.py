"""What `make run` starts (the Procfile under honcho): web + worker together; Ctrl-C stops both, no FFmpeg left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User

from jobs import storage
from jobs.models import Job, Status
from jobs.procs import tagged_processes
from tests.workers import ROOT, _database_url, wait_for
from videojobs import datadir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_procfile_stack_serves_processes_and_stops_cleanly_on_ctrl_c(start_cluster, clips, tmp_path):
    User.objects.create_user("erin", password="erin-pass-123")
    port = _free_port()
    datadir.prepare(Path(settings.JOBS_DIR).parent)  # what `make run` does before `honcho start`
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PORT": str(port),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DJANGO_SETTINGS_MODULE": "videojobs.settings_test",  # the same password hasher as this test
        "DATABASE_URL": _database_url(),
        "VIDEOJOBS_TEST_DATA_DIR": str(Path(settings.JOBS_DIR).parent),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "BATCH_SIZE": "1",
    }
    log = open(tmp_path / "honcho.log", "wb")
    stack = subprocess.Popen(
        [str(bin_dir / "honcho"), "start", "--procfile", "Procfile"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    seen: list[psutil.Process] = []  # everything the stack started, to be sure nothing outlives the test
    try:
        wait_for(lambda: _answers(f"{url}/api/health/"), timeout=30, message="gunicorn to answer")
        http = requests.Session()
        token = http.post(f"{url}/api/auth/token/", data={"username": "erin", "password": "erin-pass-123"}).json()
        http.headers["Authorization"] = f"Token {token['token']}"
        with clips(seconds=30.0, audio=False).open("rb") as video:
            job = http.post(f"{url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": "3"}).json()
        wait_for(lambda: tagged_processes(job["id"]), timeout=30, interval=0.05, message="the worker to start FFmpeg")
        members = psutil.Process(stack.pid).children(recursive=True)
        seen.extend(members)
        assert any("gunicorn" in _command_line(p) for p in members)
        assert any("qcluster" in _command_line(p) for p in members)

        stack.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal delivers to honcho
        stack.wait(timeout=20)
        wait_for(lambda: not tagged_processes(job["id"]), timeout=5, message="FFmpeg to be gone")
        wait_for(lambda: not [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], timeout=5)

        # The stopping worker handed its job back: queued, partial files gone, finished ones kept...
        stopped = Job.objects.get(pk=job["id"])
        assert stopped.status == Status.QUEUED and stopped.attempts == 1, (
            stopped.status,
            (tmp_path / "honcho.log").read_text(),
        )
        assert not list(storage.outputs_dir(stopped.pk).glob("*.part"))
        # ...and the next start resumes it at once.
        cluster = start_cluster(BATCH_SIZE="1")
        wait_for(
            lambda: Job.objects.get(pk=job["id"]).status == Status.COMPLETED,
            timeout=60,
            message=lambda: cluster.log(),
        )
        assert Job.objects.get(pk=job["id"]).attempts == 2
    finally:
        if stack.poll() is None:
            seen.extend(psutil.Process(stack.pid).children(recursive=True))
            stack.kill()
            stack.wait()
        for proc in seen:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        log.close()


def _command_line(process: psutil.Process) -> str:
    """A process's command line, or "" for one that ended since it was listed (a thumbnail's FFmpeg)."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return ""


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still booting
        return False
