"""What `make run` starts (the Procfile under honcho): web + worker together; Ctrl-C stops both, no FFmpeg left."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from django_q.models import OrmQ

from jobs import storage
from jobs.models import Job, Status
from jobs.worker.procs import tagged_processes
from tests.workers import PACED_FFMPEG, ROOT, _database_url, alive, command_line, free_port, wait_for
from videojobs import datadir

pytestmark = pytest.mark.slow


def test_procfile_stack_serves_processes_and_stops_cleanly_on_ctrl_c(start_cluster, clips, tmp_path):
    User.objects.create_user("erin", password="erin-pass-123")
    port = free_port()
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
        "WORKERS": "1",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        **PACED_FFMPEG,
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
        with clips(seconds=3.0, audio=False).open("rb") as video:
            job = http.post(f"{url}/api/jobs/", files={"videos": ("long.mp4", video)}, data={"variations": "3"}).json()
        wait_for(lambda: tagged_processes(job["id"]), timeout=30, interval=0.05, message="the worker to start FFmpeg")
        # Two more jobs wait. The cluster's only worker is busy, so it leaves them in the broker (jobs.worker.gate):
        # before, it fetched them ahead, one into its queue and one into its pusher's hand, and its stop then
        # waited forever for the blocked pusher.
        waiting = []
        for name in ("second.mp4", "third.mp4"):
            with clips(seconds=1.0, audio=False).open("rb") as video:
                waiting.append(
                    http.post(f"{url}/api/jobs/", files={"videos": (name, video)}, data={"variations": "1"}).json()
                )
        waiting_ids = {w["id"] for w in waiting}

        def queued_tasks() -> tuple[set, set]:  # (in the broker, leased: the ORM broker's lock is in the future)
            tasks = list(OrmQ.objects.all())
            return {q.task["args"][0] for q in tasks}, {q.task["args"][0] for q in tasks if q.lock > timezone.now()}

        wait_for(lambda: waiting_ids <= queued_tasks()[0], timeout=15, message="the tasks to be sent")
        assert Job.objects.get(pk=job["id"]).status == Status.PROCESSING
        assert not waiting_ids & queued_tasks()[1]  # a busy cluster holds no task it cannot start
        members = psutil.Process(stack.pid).children(recursive=True)
        seen.extend(members)
        assert any("gunicorn" in command_line(p) for p in members)
        assert any("qcluster" in command_line(p) for p in members)

        os.killpg(stack.pid, signal.SIGINT)  # Ctrl-C in a terminal: SIGINT to every process of the foreground group
        stack.wait(timeout=20)
        honcho_log = (tmp_path / "honcho.log").read_text()
        assert "SIGKILL" not in honcho_log, honcho_log  # every process stopped on its own, in time
        wait_for(lambda: not tagged_processes(job["id"]), timeout=5, message="FFmpeg to be gone")
        wait_for(lambda: not [p for p in members if alive(p)], timeout=5)

        # The stopping worker handed its job back: queued, partial files gone, finished ones kept...
        stopped = Job.objects.get(pk=job["id"])
        assert stopped.status == Status.QUEUED and stopped.claims == 1, (
            stopped.status,
            (tmp_path / "honcho.log").read_text(),
        )
        assert not list(storage.outputs_dir(stopped.pk).glob("*.part"))
        for other in Job.objects.filter(pk__in=[w["id"] for w in waiting]):  # at most started and handed back
            assert other.status == Status.QUEUED and other.claims == other.handbacks
        # ...and the next start resumes it at once, and runs the others.
        cluster = start_cluster(BATCH_SIZE="1")
        wait_for(
            lambda: Job.objects.filter(status=Status.COMPLETED).count() == 3,
            timeout=90,
            message=lambda: cluster.log(),
        )
        assert Job.objects.get(pk=job["id"]).claims == 2
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


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except (requests.ConnectionError, requests.Timeout):  # not listening yet, or its workers still booting
        return False


def test_ctrl_c_on_make_run_ends_quietly(tmp_path):
    """In a terminal, Ctrl-C reaches make, its shell and honcho: the stack stops, and make says nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATA_DIR=str(tmp_path / "data"), PORT=str(free_port()), DJANGO_SECRET_KEY="make-run-test")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: `make run` in a terminal of its own, as a user starts it
        os.chdir(ROOT)
        os.execvpe("make", ["make", "--no-print-directory", "run"], env)
    output = b""
    deadline = time.monotonic() + 120
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.2)
            if ready:
                try:
                    data = os.read(terminal, 65536)
                except OSError:  # the terminal closed: everything in it has exited
                    break
                if not data:
                    break
                output += data
            if not interrupted and b"has stopped" not in output and output.count(b"running.") >= 1:
                os.write(terminal, b"\x03")  # Ctrl-C, as typed
                interrupted = True
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever is left of the session, should the test fail early
        except ProcessLookupError:
            pass
    text = output.decode(errors="replace")
    assert interrupted, text[-3000:]
    assert b"has stopped" in output, text[-3000:]  # the worker cluster stopped in order
    assert "Error 130" not in text and "Interrupt" not in text and "SIGKILL" not in text, text[-3000:]
    assert os.waitstatus_to_exitcode(status) in (0, -signal.SIGINT), text[-3000:]
