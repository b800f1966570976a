"""Time of one cleanup pass with 1,000 expired jobs (each: 1 source, 2 outputs, a thumbnail, real files).

Also the steady-state pass: 1,000 live (unexpired, completed) jobs and nothing to do.
Run: .venv/bin/python bench/cleanup.py [jobs=1000]   (a throwaway DATA_DIR and SQLite database)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="videojobs-bench-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.results import record  # noqa: E402
from jobs import storage  # noqa: E402
from jobs.models import Job, OutputFile, SourceVideo, Status  # noqa: E402
from jobs.worker import cleanup  # noqa: E402


def make_jobs(owner, count: int, expired: bool) -> None:
    now = timezone.now()
    with transaction.atomic():
        for _ in range(count):
            created = now - timedelta(hours=30 if expired else 1)
            job = Job.objects.create(owner=owner, variations_per_video=2, status=Status.COMPLETED, created_at=created)
            source = SourceVideo.objects.create(
                job=job, position=0, original_name="a.mp4", path="uploads/00.video", size=1, duration=1, width=2,
                height=2, status=Status.COMPLETED, completed_variations=2,
            )  # fmt: skip
            storage.outputs_dir(job.pk).mkdir(parents=True)
            for index in range(2):
                path = f"outputs/s00_v{index + 1:02d}.mp4"
                (storage.job_folder(job.pk) / path).write_bytes(b"x" * 1024)
                OutputFile.objects.create(
                    job=job, source=source, variation_index=index, path=path, size=1024, effects={}
                )
            (storage.job_folder(job.pk) / "thumbnail.webp").write_bytes(b"RIFF")


def timed_pass() -> tuple[float, cleanup.Summary]:
    started = time.perf_counter()
    summary = cleanup.run()
    return time.perf_counter() - started, summary


def main(count: int) -> None:
    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench")
    make_jobs(owner, count, expired=False)
    steady, _ = timed_pass()
    print(f"steady state, {count} live jobs, nothing to do: {steady:.3f} s")
    steady = round(steady, 3)
    make_jobs(owner, count, expired=True)
    seconds, summary = timed_pass()
    per_job = seconds / count * 1000
    print(f"{count} expired jobs (+{count} live): {seconds:.3f} s, {per_job:.2f} ms per job; {summary.line()}")
    if count >= 1000:  # the smoke run's figures are not kept
        record("cleanup", {"expired_jobs": count, "seconds": round(seconds, 3), "steady_state_seconds": steady})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
