"""The ZIP: STORE entries per source folder, manifest.json with the exact effects, only files that exist."""

from __future__ import annotations

import io
import json
import zipfile

from jobs import archive, storage
from jobs.models import Status


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
    assert by_file["promo/promo_v02.mp4"]["effects"] == output.effects
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
