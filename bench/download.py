"""The download: a ZIP of at least 2 GB of outputs through gunicorn (as `make run` starts it) against
`cat`-ing the same files, with the web processes' peak resident memory, and against the ceiling of any
HTTP server on this machine: the kernel sending the same bytes to the same client (sendfile), which
copies nothing through user space. Prints the figures and adds them
to bench/results.json (key "download"); asserts nothing.

The job is made directly in the service's database and data folder (random bytes as outputs), so the
figure is the download's alone.

Run: .venv/bin/python bench/download.py [--gigabytes 2] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402

MAKE_JOB = """
import os
from django.contrib.auth.models import User
from django.utils import timezone
from jobs import storage
from jobs.models import Job, OutputFile, SourceVideo, Status
count, size = int(os.environ["BENCH_FILES"]), int(os.environ["BENCH_FILE_BYTES"])
owner = User.objects.get(username="bench")
job = Job.objects.create(owner=owner, variations_per_video=count, status=Status.COMPLETED,
                         finished_at=timezone.now())
source = SourceVideo.objects.create(job=job, position=0, original_name="big.mp4", size=1, duration=1, width=2,
                                    height=2, status=Status.COMPLETED, completed_variations=count)
storage.create_outputs_dir(job.pk)
for index in range(count):
    path = f"outputs/s00_v{index + 1:02d}.mp4"
    with open(storage.job_folder(job.pk) / path, "wb") as out:
        left = size
        while left:
            block = min(left, 64 * 1024 * 1024)
            out.write(bytes(block) if index % 2 else os.urandom(block))
            left -= block
    OutputFile.objects.create(job=job, source=source, variation_index=index, path=path, size=size, effects={})
print(job.pk)
"""


def serve_with_sendfile(files: list[Path]) -> tuple[str, threading.Thread]:
    """The ceiling of any HTTP download on this machine: one answer of the files' bytes, sent by the kernel
    (sendfile, no copy through user space), to one client. Returns its URL and the serving thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    size = sum(path.stat().st_size for path in files)

    def serve() -> None:
        with listener, listener.accept()[0] as client:
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            for path in files:
                with path.open("rb") as opened:
                    client.sendfile(opened)

    thread = threading.Thread(target=serve, daemon=True)  # a failed curl must not leave it waiting to accept
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/", thread


def curl_seconds(url: str, *headers: str) -> tuple[float, str]:
    """curl as the client (a Python client would be the bottleneck, not the server): (seconds, its output:
    the answer's headers, then the bytes received)."""
    command = ["curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", "%{size_download}"]
    for header in headers:
        command += ["-H", header]
    started = time.monotonic()
    curl = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    return time.monotonic() - started, curl.stdout


def peak_rss(processes, stop: threading.Event, peak: dict) -> None:
    while not stop.is_set():
        sizes = []
        for process in processes:
            try:
                sizes.append(process.memory_info().rss)
            except psutil.Error:  # a worker that went away counts for nothing
                continue
        peak["rss"] = max(peak.get("rss", 0), sum(sizes))
        peak["largest"] = max(peak.get("largest", 0), *sizes, 0)
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--against-gthread",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also serve the same job with the earlier serving model (gunicorn's gthread workers, WSGI alone) "
        "and download from each in turn ROUNDS times: the medians side by side",
    )
    args = parser.parse_args()
    total = int((0.01 if args.smoke else args.gigabytes) * 1024**3)
    count = 10
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-download-"))
    try:
        run(args, total, count, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # 2 GB


def run(args, total: int, count: int, folder: Path) -> None:
    service = Service(folder / "service", STORAGE_CAP_BYTES=str(4 * total + 1024**3))
    try:
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", MAKE_JOB],
            cwd=ROOT, env={**service.env, "BENCH_FILES": str(count), "BENCH_FILE_BYTES": str(total // count)},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        job_id = made.stdout.strip().splitlines()[-1]
        files = sorted((folder / "service" / "data" / "jobs" / job_id / "outputs").glob("*.mp4"))
        started = time.monotonic()
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
        cat_seconds = time.monotonic() - started

        url, server = serve_with_sendfile(files)
        sendfile_seconds, _ = curl_seconds(url)
        server.join()

        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=peak_rss, args=(service.web_processes(), stop, peak))
        sampler.start()
        authorization = f"Authorization: {service.http.headers['Authorization']}"
        zip_seconds, curl = curl_seconds(f"{service.url}/api/jobs/{job_id}/download/", authorization)
        received = int(curl.rsplit("\n", 1)[-1])
        length = int(next(line.split(":", 1)[1] for line in curl.splitlines()
                          if line.lower().startswith("content-length:")))  # fmt: skip
        stop.set()
        sampler.join()
        if args.against_gthread:
            compare_with_gthread(service, job_id, authorization, args.against_gthread, args.results)
    finally:
        service.stop()
    size = sum(f.stat().st_size for f in files)
    figures = {
        "output_bytes": size,
        "zip_bytes": received,
        "content_length_exact": length == received,
        "zip_mb_per_s": round(received / zip_seconds / 1024**2, 1),
        "cat_mb_per_s": round(size / cat_seconds / 1024**2, 1),
        "ratio_to_cat": round((received / zip_seconds) / (size / cat_seconds), 3),
        "sendfile_mb_per_s": round(size / sendfile_seconds / 1024**2, 1),
        "sendfile_ratio_to_cat": round((size / sendfile_seconds) / (size / cat_seconds), 3),
        "ratio_to_sendfile": round((received / zip_seconds) / (size / sendfile_seconds), 3),
        "peak_rss_mb_all_web_processes": round(peak["rss"] / 1024**2, 1),
        "peak_rss_mb_largest_web_process": round(peak["largest"] / 1024**2, 1),
        "cpus": os.cpu_count(),
    }
    print(
        f"ZIP of {size / 1024**3:.2f} GB: {figures['zip_mb_per_s']} MB/s against cat's {figures['cat_mb_per_s']} MB/s "
        f"(ratio {figures['ratio_to_cat']}); the kernel's sendfile of the same bytes to curl, the ceiling of any "
        f"HTTP server here: {figures['sendfile_mb_per_s']} MB/s ({figures['sendfile_ratio_to_cat']} of cat; the ZIP "
        f"is {figures['ratio_to_sendfile']} of it); Content-Length exact: {figures['content_length_exact']}; peak RSS "
        f"{figures['peak_rss_mb_largest_web_process']} MB in the largest web process, "
        f"{figures['peak_rss_mb_all_web_processes']} MB for all of them"
    )
    record("download", figures, args.results)


GTHREAD = ["videojobs.wsgi", "--worker-class", "gthread", "--workers", "2", "--threads", "8"]


def compare_with_gthread(service: Service, job_id: str, authorization: str, rounds: int, results: Path) -> None:
    """The same ZIP from this service and from gunicorn's gthread workers (WSGI alone, the serving model before
    the event streams) on the same data, in turn: the median MB/s of each."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    reference = subprocess.Popen(
        [gunicorn, *GTHREAD, "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=service.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        speeds: dict[str, list[float]] = {"asgi": [], "gthread": []}
        for _ in range(rounds):
            for name, base in (("asgi", service.url), ("gthread", f"http://127.0.0.1:{port}")):
                seconds, out = curl_seconds(f"{base}/api/jobs/{job_id}/download/", authorization)
                speeds[name].append(int(out.rsplit("\n", 1)[-1]) / seconds / 1024**2)
    finally:
        reference.terminate()
        reference.wait(10)
    medians = {name: round(sorted(values)[len(values) // 2], 1) for name, values in speeds.items()}
    ratio = round(medians["asgi"] / medians["gthread"], 3)
    print(
        f"the same ZIP {rounds} times from each in turn: {medians['asgi']} MB/s (this service) against "
        f"{medians['gthread']} MB/s (gthread workers): {ratio} (medians; every figure: {speeds})"
    )
    record("download_serving_models", {"rounds": rounds, "median_mb_per_s": medians, "ratio": ratio}, results)


if __name__ == "__main__":
    main()
