"""The ZIP: STORE entries per source folder, manifest.json with the exact effects, only files that exist."""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework.authtoken.models import Token

from jobs import storage
from jobs.models import Status
from jobs.services import slots
from jobs.web import archive


@pytest.fixture(autouse=True)
def _untagged(plain_output_names):
    """These tests are about folders, numbering and the manifest; the job's tag has its own tests."""


def _open(job) -> zipfile.ZipFile:
    stream = archive.job_zip(job)
    data = b"".join(stream)
    assert len(stream) == len(data)  # the size announced as Content-Length is exact
    return zipfile.ZipFile(io.BytesIO(data))


def test_entries_per_source_folder_uncompressed_with_a_manifest(post_job):
    job = post_job(["promo.mov", "b.mp4"], variations=2, run=True)
    zipped = _open(job)
    assert zipped.testzip() is None
    assert sorted(zipped.namelist()) == sorted(
        ["promo/promo_v01.mp4", "promo/promo_v02.mp4", "b/b_v01.mp4", "b/b_v02.mp4", "manifest.json"]
    )
    assert {info.compress_type for info in zipped.infolist()} == {zipfile.ZIP_STORED}
    manifest = json.loads(zipped.read("manifest.json"))
    assert manifest["job"] == job.pk and manifest["seed"] == job.seed
    by_file = {entry["file"]: entry for entry in manifest["outputs"]}
    output = job.outputs.get(source__position=0, variation_index=1)
    assert by_file["promo/promo_v02.mp4"]["effects"] == {**output.effects, "rotation_deg": pytest.approx(0, abs=2)}
    assert by_file["promo/promo_v02.mp4"]["effects"]["rotation_deg"] == round(
        math.degrees(output.effects["rotation"]), 4
    )
    assert by_file["promo/promo_v02.mp4"]["source"] == "promo.mov"
    # Numbered as the file names are (_v02 is variation 2), with the API's 0-based index beside it.
    assert by_file["promo/promo_v02.mp4"]["variation"] == 2
    assert by_file["promo/promo_v02.mp4"]["variation_index"] == 1
    assert zipped.read("promo/promo_v02.mp4") == storage.output_path(output).read_bytes()


def test_names_that_would_share_or_climb_out_of_a_folder_get_their_own(post_job):
    job = post_job(["a.mp4", "A.mov", "...mp4", ". .mp4"], variations=1, run=True)
    assert sorted(_open(job).namelist()) == [
        "A (2)/A (2)_v01.mp4",
        "a/a_v01.mp4",
        "manifest.json",
        "video3/video3_v01.mp4",
        "video4/video4_v01.mp4",
    ]


def test_outputs_whose_file_vanished_are_left_out(make_job):
    job = make_job(status=Status.COMPLETED, outputs=2)
    storage.output_path(job.outputs.get(variation_index=0)).unlink()
    zipped = _open(job)
    assert sorted(zipped.namelist()) == ["a/a_v02.mp4", "manifest.json"]
    assert [entry["file"] for entry in json.loads(zipped.read("manifest.json"))["outputs"]] == ["a/a_v02.mp4"]


def test_folders_stay_apart_after_the_fallback_names(post_job):
    """ "..mp4" falls back to video1, which "video1.mp4" is too: extracting must not overwrite one with the other."""
    job = post_job(["..mp4", "video1.mp4", "Video1.mov"], variations=1, run=True)
    assert [s.original_name for s in job.sources.all()] == ["..mp4", "video1 (2).mp4", "Video1 (3).mov"]
    assert sorted(_open(job).namelist()) == [
        "Video1 (3)/Video1 (3)_v01.mp4",
        "manifest.json",
        "video1 (2)/video1 (2)_v01.mp4",
        "video1/video1_v01.mp4",
    ]


def test_a_download_in_progress_survives_a_delete_and_a_cleanup(api, post_job, settings):
    job = post_job(["a.mp4", "b.mp4"], variations=2, run=True)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    chunks = iter(response.streaming_content)
    first = next(chunks)  # the client has started reading
    assert api.delete(f"/api/jobs/{job.pk}/").status_code == 204
    assert not storage.job_folder(job.pk).exists()
    data = first + b"".join(chunks)
    response.close()
    assert len(data) == int(response["Content-Length"])
    zipped = zipfile.ZipFile(io.BytesIO(data))
    assert zipped.testzip() is None and len(zipped.namelist()) == 5


def test_fifty_slow_downloads_of_a_200_output_job_never_5xx_and_a_user_streams_at_most_four(
    live_server, make_job, user, other_user, settings
):
    """Each streaming ZIP holds all its files open while a slow client reads it: without a bound per user,
    50 of them took 10,000 file descriptors. Now the fifth and later get 429, and nobody a 5xx."""
    settings.MAX_DOWNLOADS_PER_USER = 4
    job = make_job(outputs=200, size=250_000)  # 50 MB: far more than the sockets' buffers hold for a slow client
    token = Token.objects.get_or_create(user=user)[0].key
    url = f"{live_server.url}/api/jobs/{job.pk}/download/"

    def start(_):
        response = requests.get(url, headers={"Authorization": f"Token {token}"}, stream=True, timeout=30)
        if response.status_code == 200:
            next(response.iter_content(1024))  # then reads no more for now: a slow client
        return response

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(start, range(50)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 4 + [429] * 46
    assert "MAX_DOWNLOADS_PER_USER" in next(r for r in responses if r.status_code == 429).json()["detail"]
    other_token = Token.objects.get_or_create(user=other_user)[0].key
    their_job = make_job(outputs=1, owner=other_user)
    theirs = requests.get(
        f"{live_server.url}/api/jobs/{their_job.pk}/download/", headers={"Authorization": f"Token {other_token}"}
    )
    assert theirs.status_code == 200  # the bound is per user
    for response in responses:
        response.close()
    deadline = time.monotonic() + 20  # the server notices the closed connections as it writes to them
    while True:
        again = requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=30)
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again.status_code == 200 and zipfile.ZipFile(io.BytesIO(again.content)).testzip() is None


def test_a_slot_is_released_when_the_zip_cannot_be_opened(make_job, settings, monkeypatch, user):
    settings.MAX_DOWNLOADS_PER_USER = 1
    monkeypatch.setattr(slots.Slot, "__del__", lambda self: None)  # released by zip_response, not by chance
    job = make_job(outputs=1)

    def refuse(*args, **kwargs):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(archive, "job_zip", refuse)
    for _ in range(2):
        with pytest.raises(OSError):
            archive.zip_response(job, user.pk)
