"""Every bound tried as an attacker would, against the running service (gunicorn + runworker, as `make run`
starts them), with nothing but an HTTP client. Prints what each attack achieved; figures are kept in
bench/results.json under "hostile".

    python bench/hostile.py [--smoke]

1. Disk: anonymous 60 MB multipart bodies to the routes that take no files (forged CSRF cookie and header):
   the answer, its time, and the bytes that reached the data folder.
2. Probe CPU: a MOV of tiny raw frames at 5000 fps, as a signed-in user: the web process's CPU for it.
3. Memory: an H.264 stream that switches from 160x120 to 7680x4320 after one second: the peak RSS of the
   worker's FFmpeg, and the video's cause.
4. Storage: a 10 KB noise upload with 20 variations: the job's largest footprint against its reservation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))  # this process's; never written

import django  # noqa: E402

django.setup()

from bench.results import record  # noqa: E402
from bench.service import Service  # noqa: E402
from jobs.ffmpeg import ffmpeg_binary  # noqa: E402
from tests.media import make_size_switching_clip  # noqa: E402


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", *args], check=True)


def disk(service: Service, megabytes: int) -> list[dict]:
    """A body of `megabytes` declared, sent as fast as the server takes it."""
    spool = Path(service.env["DATA_DIR"]) / "upload-tmp"
    rows = []
    for path in ("/login/", "/admin/login/", "/api/auth/token/", "/jobs/x/cancel/"):
        size = megabytes * 1024**2
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken={'a' * 32}\r\nX-CSRFToken: {'a' * 32}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        )
        started, sent = time.monotonic(), 0
        with socket.create_connection(("127.0.0.1", service.port), timeout=30) as connection:
            connection.sendall(head.encode())
            connection.setblocking(False)
            answer, chunk = b"", b"--x\r\n" + b"\0" * (1024**2 - 5)
            while b"\r\n" not in answer and time.monotonic() - started < 30:
                try:
                    answer += connection.recv(4096)
                except BlockingIOError:
                    pass
                if sent < size and b"\r\n" not in answer:
                    try:
                        sent += connection.send(chunk[: size - sent])
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        pass
        spooled = sum(p.stat().st_size for p in spool.glob("*")) if spool.is_dir() else 0
        rows.append(
            {
                "route": path,
                "status": answer.split(b"\r\n", 1)[0].decode(errors="replace"),
                "seconds": round(time.monotonic() - started, 3),
                "bytes_sent_before_the_answer": sent,
                "bytes_spooled": spooled,
            }
        )
    return rows


def _web_cpu(service: Service) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in service.web_processes())


def probe_cpu(service: Service, folder: Path, seconds: int) -> dict:
    path = folder / "tiny-frames.mov"
    raw = f"-f lavfi -i color=s=2x2:r=5000 -t {seconds} -c:v rawvideo -pix_fmt rgb24"
    _ffmpeg(*raw.split(), str(path))
    before, started = _web_cpu(service), time.monotonic()
    with path.open("rb") as handle:
        answer = service.http.post(
            f"{service.url}/api/jobs/", files=[("videos", (path.name, handle, "video/quicktime"))]
        )
    return {
        "file_bytes": path.stat().st_size,
        "frames": 5000 * seconds,
        "status": answer.status_code,
        "detail": answer.json().get("detail", ""),
        "web_cpu_seconds": round(_web_cpu(service) - before, 3),
        "seconds": round(time.monotonic() - started, 3),
    }


def _wait(service: Service, job: dict, sample=None) -> dict:
    while job["status"] in ("queued", "processing"):
        if sample:
            sample()
        time.sleep(0.05)
        job = service.http.get(f"{service.url}/api/jobs/{job['id']}/").json()
    return job


def memory(service: Service, folder: Path, then: str) -> dict:
    path = make_size_switching_clip(folder / "switch.mp4", first="160x120", then=then)
    peak = {"rss": 0, "job": None}

    def sample():  # this job's FFmpeg only: another job may be encoding on the same machine
        for process in psutil.process_iter(["name", "environ"]):
            try:
                if (process.info["environ"] or {}).get("VIDEOJOBS_JOB") == peak["job"]:
                    peak["rss"] = max(peak["rss"], process.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    with path.open("rb") as handle:
        job = service.http.post(
            f"{service.url}/api/jobs/", files=[("videos", (path.name, handle, "video/mp4"))], data={"variations": 5}
        ).json()
    peak["job"] = job["id"]
    job = _wait(service, job, sample)
    return {
        "file_bytes": path.stat().st_size,
        "switches_to": then,
        "job_status": job["status"],
        "cause": job["sources"][0]["error"],
        "ffmpeg_peak_rss_mb": round(peak["rss"] / 1024**2, 1),
    }


def storage(service: Service, folder: Path, variations: int) -> dict:
    path = folder / "noise.mp4"
    noise = "-f lavfi -i nullsrc=s=320x240:r=25 -vf geq=lum='random(1)*255':cb=128:cr=128 -t 2 -c:v libx264"
    _ffmpeg(*noise.split(), *"-preset ultrafast -b:v 30k -maxrate 30k -bufsize 60k -pix_fmt yuv420p".split(), str(path))
    peak = {"bytes": 0}
    job: dict = {}

    def sample():  # the job's folder as it is now, partial files included (a file may vanish as it is read)
        total = 0
        for root, _folders, names in os.walk(Path(service.env["DATA_DIR"]) / "jobs" / job["id"]):
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(root, name)).st_size
        peak["bytes"] = max(peak["bytes"], total)

    with path.open("rb") as handle:
        files = [("videos", (path.name, handle, "video/mp4"))]
        job = service.http.post(f"{service.url}/api/jobs/", files=files, data={"variations": variations}).json()
    job = _wait(service, job, sample)
    sample()
    database = sqlite3.connect(Path(service.env["DATA_DIR"]) / "db.sqlite3")  # the API does not show reservations
    (reserved,) = database.execute("SELECT reserved_bytes FROM jobs_job WHERE id = ?", [job["id"]]).fetchone()
    database.close()
    return {
        "upload_bytes": path.stat().st_size,
        "variations": variations,
        "job_status": job["status"],
        "outputs_bytes": sum(o["size"] for s in job["sources"] for o in s["outputs"]),
        "peak_job_bytes": peak["bytes"],
        "reserved_bytes": reserved,
        "old_reservation_bytes": path.stat().st_size * (1 + variations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: checks the script runs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        service = Service(folder / "service")
        try:
            figures = {
                "disk": disk(service, 2 if options.smoke else 60),
                "probe": probe_cpu(service, folder, 2 if options.smoke else 100),
                "memory": memory(service, folder, "640x480" if options.smoke else "7680x4320"),
                "storage": storage(service, folder, 2 if options.smoke else 20),
            }
        finally:
            service.stop()
    for row in figures["disk"]:
        print(
            f"disk   {row['route']:<20} {row['status']:<40} {row['seconds']:>6} s, "
            f"{row['bytes_sent_before_the_answer']} bytes sent, {row['bytes_spooled']} spooled"
        )
    probe = figures["probe"]
    print(
        f"probe  {probe['frames']} raw frames ({probe['file_bytes']} bytes): {probe['status']} "
        f"in {probe['seconds']} s, web CPU {probe['web_cpu_seconds']} s: {probe['detail']}"
    )
    mem = figures["memory"]
    print(
        f"memory switch to {mem['switches_to']}: FFmpeg peak RSS {mem['ffmpeg_peak_rss_mb']} MB, "
        f"job {mem['job_status']}: {mem['cause']}"
    )
    st = figures["storage"]
    print(
        f"storage {st['upload_bytes']} B x {st['variations']}: peak {st['peak_job_bytes']} B "
        f"of {st['reserved_bytes']} B reserved (the old reservation: {st['old_reservation_bytes']} B)"
    )
    if not options.smoke:
        record("hostile", figures)


if __name__ == "__main__":
    main()
