"""The cost of one status answer (GET /api/jobs/{id}/) inside the web process, without HTTP: Python function
calls per answer (cProfile; the same count on every machine) and CPU milliseconds per answer (the least of
5 rounds of 200; varies with the machine and its load), for a job of 2 videos x 5 variations and one of
10 x 20. Prints them and adds them to bench/results.json (key "status_answer"); asserts nothing.

Run: .venv/bin/python bench/status_answer.py [--smoke]   (a throwaway DATA_DIR and SQLite database)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="videojobs-bench-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-bench-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["API_REQUESTS_PER_MINUTE"] = "1000000"  # the throttle must not answer 429 here

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.results import RESULTS, record  # noqa: E402
from jobs.models import Job, OutputFile, SourceVideo, Status  # noqa: E402

SHAPES = ((2, 5), (10, 20))  # (videos, variations per video)


def make_job(owner, videos: int, variations: int) -> Job:
    job = Job.objects.create(owner=owner, status=Status.PROCESSING, variations_per_video=variations)
    for position in range(videos):
        source = SourceVideo.objects.create(
            job=job, position=position, original_name=f"video{position}.mp4", path=f"uploads/{position:02d}.video",
            size=1_000_000, duration=10, width=1280, height=720, status=Status.PROCESSING, progress=50,
        )  # fmt: skip
        OutputFile.objects.bulk_create(
            OutputFile(
                job=job, source=source, variation_index=index, path=f"outputs/s{position:02d}_v{index + 1:02d}.mp4",
                thumbnail=f"outputs/s{position:02d}_v{index + 1:02d}.webp", size=500_000,
                effects={"rotation": 0.004, "brightness": 0.01, "contrast": 1.02, "saturation": 0.98},
            )
            for index in range(variations)
        )  # fmt: skip
    return job


def measure(client: Client, url: str, rounds: int, per_round: int) -> dict:
    for _ in range(20):  # warm: imports, the connection, DRF's cached schema of the serializers
        assert client.get(url).status_code == 200
    cpu = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            client.get(url)
        cpu.append((time.process_time() - started) / per_round * 1000)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(per_round):
        client.get(url)
    profile.disable()
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return {"function_calls": round(calls / per_round), "cpu_ms": round(min(cpu), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds, per_round = (1, 5) if args.smoke else (5, 200)
    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench")
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    figures = {}
    for videos, variations in SHAPES:
        job = make_job(owner, videos, variations)
        shape = f"{videos}x{variations}"
        figures[shape] = measure(client, f"/api/jobs/{job.pk}/", rounds, per_round)
        print(
            f"status answer, {videos} videos x {variations} variations: {figures[shape]['function_calls']} Python "
            f"function calls, {figures[shape]['cpu_ms']} ms of CPU",
            flush=True,
        )
    record("status_answer", figures, args.results)


if __name__ == "__main__":
    main()
