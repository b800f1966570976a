"""Property-based, with real media: whatever container, codec, size, rate, resolution switch or truncation
an upload has, the answer is 201 or a 4xx; an accepted one runs to a terminal status with every FFmpeg
under a fixed memory bound, and the job never holds more bytes than it reserved."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from jobs import ffmpeg, storage
from jobs.models import TERMINAL, Job
from tests.media import make_size_switching_clip

pytestmark = pytest.mark.slow

MEMORY_BOUND = 1024**3  # what every FFmpeg of the fuzz may take (ENCODE_MEMORY_BYTES)
WEB_MEMORY_BOUND = 1536 * 1024**2  # this process: the web side's probe and the test's own work
SIZES = st.sampled_from(["2x2", "16x16", "320x240", "240x320", "640x480", "1280x720"])
CODECS = st.sampled_from(["libx264", "mpeg4", "mjpeg", "rawvideo"])


@st.composite
def hostile_media(draw):
    return {
        "codec": draw(CODECS),
        "container": draw(st.sampled_from(["mp4", "mov"])),
        "size": draw(SIZES),
        "rate": draw(st.sampled_from([1, 25, 25, 30, 121, 240, 3000])),
        "seconds": draw(st.sampled_from([0.2, 1.0, 1.0, 1.5, 2.5])),
        "audio": draw(st.booleans()),
        "switch_to": draw(st.one_of(st.none(), st.none(), SIZES)),
        "faststart": draw(st.booleans()),  # the index first: a truncated file still opens, and breaks later
        "truncate": draw(st.one_of(st.none(), st.none(), st.floats(0.3, 0.95))),
    }


def _make(folder: Path, media: dict) -> Path | None:
    """The file the parameters describe, or None when FFmpeg cannot make it (e.g. rawvideo in an MP4)."""
    path = folder / f"hostile.{media['container']}"
    if media["codec"] == "rawvideo" and media["size"] not in ("2x2", "16x16", "320x240"):
        return None  # hundreds of MB: refused for its size alone, which the suite tests elsewhere
    if media["switch_to"] is not None:
        if media["codec"] != "libx264":
            return None
        make_size_switching_clip(path, first=media["size"], then=media["switch_to"], seconds=media["seconds"])
    else:
        cmd = [ffmpeg.ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi"]
        cmd += ["-i", f"testsrc2=size={media['size']}:rate={media['rate']}:duration={media['seconds']}"]
        if media["audio"]:
            cmd += ["-f", "lavfi", "-i", f"sine=duration={media['seconds']}", "-c:a", "aac"]
        cmd += ["-c:v", media["codec"], "-pix_fmt", "yuvj420p" if media["codec"] == "mjpeg" else "yuv420p"]
        cmd += ["-movflags", "+faststart"] if media["faststart"] else []
        if subprocess.run([*cmd, str(path)], capture_output=True, timeout=60).returncode != 0:
            return None
    if media["truncate"] is not None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * media["truncate"])])
    return path


HOSTILE = {"codec": "libx264", "container": "mp4", "rate": 25, "seconds": 1.0, "audio": False, "faststart": False}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(media=hostile_media())
@example(media={**HOSTILE, "size": "160x120", "switch_to": "1280x720", "truncate": None})  # grows past MAX_PIXELS
@example(media={**HOSTILE, "size": "320x240", "switch_to": None, "truncate": 0.6, "faststart": True})  # breaks late
@example(media={**HOSTILE, "size": "2x2", "switch_to": None, "truncate": None, "rate": 3000, "codec": "rawvideo"})
@example(media={**HOSTILE, "size": "2x2", "switch_to": None, "truncate": 0.8359375, "rate": 30, "audio": True})  # a 500
def test_hostile_media_is_refused_cleanly_or_processed_within_its_bounds(
    api, settings, tmp_path_factory, run_measured, media
):
    settings.MAX_PIXELS, settings.MAX_FPS, settings.MAX_DURATION_SECONDS = 640 * 480, 120, 2
    settings.ENCODE_MEMORY_BYTES = MEMORY_BOUND
    path = _make(tmp_path_factory.mktemp("media"), media)
    assume(path is not None)
    video = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")

    response = api.post("/api/jobs/", {"videos": [video], "variations": 2}, format="multipart")

    assert response.status_code == 201 or 400 <= response.status_code < 500, response.content
    assert psutil.Process().memory_info().rss < WEB_MEMORY_BOUND  # the probe decoded no huge frame here
    event(f"answer {response.status_code}")
    if response.status_code != 201:
        assert response.json()["detail"]
        event(response.json()["detail"].split(": ", 1)[-1][:50])
        return
    job = Job.objects.get(pk=response.json()["id"])
    seen = run_measured(job)
    assert job.status in TERMINAL
    event(f"job {job.status}: {job.error[:60]}")
    assert seen["bytes"] <= job.reserved_bytes
    assert seen["rss"] < MEMORY_BOUND
    storage.delete_job(job)
