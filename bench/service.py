"""The service as `make run` starts it (gunicorn + `manage.py runworker`) on a fresh data folder, for the
benchmarks that measure it from the outside, over HTTP with a token."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
# How often a benchmark client asks for its job's status: more often than the pages (2 s, backing off
# to 10 s), rarely enough that its own requests do not take a measurable share of the CPU the encoders
# need (at 0.1 s, about 10 requests/s cost a few percent of a 2-core machine). Near the job's end, as
# its progress tells, the client asks more often, down to every FINAL_POLL_SECONDS: one that waited out
# a whole interval after the job ended would add half an interval on average to every figure.
POLL_SECONDS = 1.0
FINAL_POLL_SECONDS = 0.05


def next_poll(started: float, now: float, progress: int) -> float:
    """Seconds to the next status request: half the time left (estimated from the progress so far, at
    the pace so far), between FINAL_POLL_SECONDS and POLL_SECONDS."""
    if progress <= 0:
        return POLL_SECONDS
    left = (now - started) * (100 - progress) / progress
    return min(POLL_SECONDS, max(FINAL_POLL_SECONDS, left / 2))


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's web command (what `make run` starts), with this interpreter's gunicorn and `port`."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = shlex.split(line.split(":", 1)[1])
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    bind = command.index("--bind") + 1
    command[bind] = f"127.0.0.1:{port}"  # the benchmark's own fixed password: never reachable from elsewhere
    return command


class Service:
    """gunicorn + runworker on a fresh data folder, as `make run` starts them."""

    def __init__(self, folder: Path, workers: int = 1, batch_size: int = 5, **env: str):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "videojobs.settings",
            "DATA_DIR": str(folder / "data"),
            "DJANGO_SECRET_KEY": "bench-only-secret-key-bench-only-secret-key",
            "DJANGO_DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "WORKERS": str(workers),
            "BATCH_SIZE": str(batch_size),
            "API_REQUESTS_PER_MINUTE": "100000",
            "MAX_ACTIVE_JOBS_PER_USER": "100",
            "DJANGO_SUPERUSER_USERNAME": "bench",
            "DJANGO_SUPERUSER_PASSWORD": "bench-pass-123",
            "DJANGO_SUPERUSER_EMAIL": "bench@example.com",
            **env,
        }
        python = sys.executable
        steps = (
            ["-m", "videojobs.datadir"],
            ["manage.py", "migrate", "-v0"],
            ["manage.py", "collectstatic", "--noinput", "-v0"],  # as `make run` does: the pages' scripts
            ["manage.py", "ensure_superuser"],
        )
        for step in steps:
            subprocess.run([python, *step], cwd=ROOT, env=self.env, check=True, capture_output=True)
        web = procfile_web_command(self.port)
        self.log = open(folder / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.processes = [
            subprocess.Popen(web, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log),
            subprocess.Popen(
                [python, "manage.py", "runworker"], cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log
            ),
        ]
        self.http = requests.Session()
        deadline = time.monotonic() + 60
        while True:
            try:
                token = self.http.post(
                    f"{self.url}/api/auth/token/", data={"username": "bench", "password": "bench-pass-123"}
                )
                if token.ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start; see " + str(folder / "service.log"))
            time.sleep(0.2)
        self.http.headers["Authorization"] = f"Token {token.json()['token']}"

    def run_job(self, sources: list[Path], variations: int, **fields) -> tuple[float, dict, bytes]:
        """POST (with more form `fields`: formats, fit, strength...), poll until finished, download the ZIP:
        (seconds, the job JSON, the ZIP)."""
        started = time.monotonic()
        files = [("videos", (source.name, source.open("rb"), "video/mp4")) for source in sources]
        data = {"variations": variations, **fields}
        job = self.http.post(f"{self.url}/api/jobs/", files=files, data=data).json()
        for _, (_, handle, _) in files:
            handle.close()
        while job["status"] in ("queued", "processing"):
            time.sleep(next_poll(started, time.monotonic(), job["progress"]))
            job = self.http.get(f"{self.url}/api/jobs/{job['id']}/").json()
        if job["status"] != "completed":
            raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['error']}")
        archive = self.http.get(job["download_url"]).content
        return time.monotonic() - started, job, archive

    @contextlib.contextmanager
    def paused(self):
        """Every process of the service stopped (SIGSTOP) for the duration, so that whatever runs
        meanwhile has the machine to itself, as if the service were not there."""
        processes = []
        for process in self.processes:
            parent = psutil.Process(process.pid)
            processes += [parent, *parent.children(recursive=True)]
        for process in processes:
            process.suspend()
        try:
            yield
        finally:
            for process in processes:
                process.resume()

    def web_processes(self) -> list:
        """gunicorn's master and its workers (psutil.Process), for their memory."""

        master = psutil.Process(self.processes[0].pid)
        return [master, *master.children(recursive=True)]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=60)
        self.log.close()
