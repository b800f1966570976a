"""The whole path a user takes, over real HTTP, with a real qcluster process and real FFmpeg."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile

import av
import numpy as np
import pytest
import requests
from django.contrib.auth.models import User

from jobs.services.output_names import job_tag
from tests.webhook_receiver import Receiver
from tests.workers import wait_for

pytestmark = pytest.mark.slow


def _first_frame(source) -> np.ndarray:
    with av.open(source) as container:
        return next(container.decode(video=0)).to_ndarray(format="gray").astype(np.int16)


def _duration(source) -> float:
    with av.open(source) as container:
        frames = sum(1 for _ in container.decode(video=0))
        return container.duration / av.time_base, frames


def test_upload_process_and_download_with_a_real_worker(live_server, start_cluster, clips, settings):
    """...and the worker's webhook sender tells a local receiver, signed, when the job is done."""
    User.objects.create_user("carol", password="pass-for-carol")
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on 127.0.0.1
    hook = Receiver()
    cluster = start_cluster(BATCH_SIZE="2", WEBHOOK_ALLOW_PRIVATE="1")
    http = requests.Session()
    token = http.post(
        f"{live_server.url}/api/auth/token/", data={"username": "carol", "password": "pass-for-carol"}
    ).json()["token"]
    http.headers["Authorization"] = f"Token {token}"

    source_a, source_b = clips(seconds=2.0), clips(seconds=1.0, audio=False)
    with source_a.open("rb") as a, source_b.open("rb") as b:
        response = http.post(
            f"{live_server.url}/api/jobs/",
            files=[("videos", ("spring sale.mp4", a, "video/mp4")), ("videos", ("teaser.mov", b, "video/quicktime"))],
            data={"variations": "3", "notify_url": hook.url()},
        )
    assert response.status_code == 201, response.text
    job_url = f"{live_server.url}/api/jobs/{response.json()['id']}/"

    def finished():
        body = http.get(job_url).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    body = wait_for(finished, timeout=90, message=lambda: f"the job to finish; worker log:\n{cluster.log()}")
    assert body["status"] == "completed", body
    assert body["completed_variations"] == body["total_variations"] == 6
    assert http.get(f"{live_server.url}/api/health/").json()["checks"]["worker"] is True
    wait_for(lambda: hook.received, timeout=30, message=lambda: f"the webhook; worker log:\n{cluster.log()}")
    hook.close()
    (told,) = hook.received
    secret = http.get(f"{live_server.url}/api/auth/webhook-secret/").json()["secret"]
    expected_signature = "sha256=" + hmac.new(secret.encode(), told.body, hashlib.sha256).hexdigest()
    assert told.headers["X-Videojobs-Signature"] == expected_signature
    assert json.loads(told.body)["status"] == "completed" and json.loads(told.body)["id"] == body["id"]

    download = http.get(body["download_url"])
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.testzip() is None
    tag = job_tag(body["id"])
    expected = {f"spring sale/spring sale_v0{i}_{tag}.mp4" for i in (1, 2, 3)} | {
        f"teaser/teaser_v0{i}_{tag}.mp4" for i in (1, 2, 3)
    }
    assert set(archive.namelist()) == expected | {"manifest.json"}
    manifest = json.loads(archive.read("manifest.json"))
    assert {entry["file"] for entry in manifest["outputs"]} == expected
    assert len({json.dumps(entry["effects"], sort_keys=True) for entry in manifest["outputs"]}) == 6

    for stem, source in (("spring sale", source_a), ("teaser", source_b)):
        source_duration, source_frames = _duration(str(source))
        source_frame = _first_frame(str(source))
        frames = []
        for name in sorted(n for n in expected if n.startswith(stem + "/")):
            data = io.BytesIO(archive.read(name))
            duration, count = _duration(data)
            assert abs(duration - source_duration) <= 0.2, (name, duration, source_duration)
            assert count == source_frames
            data.seek(0)
            frames.append(_first_frame(data))
        for frame in frames:
            assert np.abs(frame - source_frame).mean() > 0.5  # differs from the source
        for i, first in enumerate(frames):
            for second in frames[i + 1 :]:
                assert np.abs(first - second).mean() > 0.1  # and from its siblings
