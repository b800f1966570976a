"""Formats, fit, strength and mirror through the service, on real FFmpeg and generated clips."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import storage
from jobs.ffmpeg import ffmpeg_binary
from jobs.ffmpeg.effects import Effects
from jobs.ffmpeg.placement import STANDARD_SIZES, frame_size, placement_filter
from jobs.models import Job, OutputFile
from jobs.worker import runner
from tests.media import make_clip, make_edge_subject_clip

RATIOS = {name: width / height for name, (width, height) in STANDARD_SIZES.items()}


def _streams(path) -> dict:
    """{"width", "height", "video", "audio"}: the frame and each stream's duration in seconds, decoded."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        found = {"width": video.width, "height": video.height}
        for stream in container.streams:
            ends = [float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.pts is not None]
            container.seek(0)
            found[stream.type] = max(ends) if ends else 0.0
    return found


def _frame(path, at: float = 0.5) -> np.ndarray:
    """The luma plane of the first frame at or after `at` seconds."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time >= at:
                return frame.to_ndarray(format="gray").astype(float)
    raise AssertionError("no frame")


def _outputs(job: Job) -> list[OutputFile]:
    return list(OutputFile.objects.filter(job=job).order_by("variation_index", "format"))


@pytest.mark.parametrize("fit", ["crop", "pad", "blur"])
def test_every_format_has_its_ratio_and_a_small_source_is_never_scaled_up(post_job, fit):
    job = post_job(variations=1, run=True, fields={"formats": ["source", "9:16", "1:1", "4:5", "16:9"], "fit": fit})
    assert job.status == "completed", job.error
    outputs = {output.format: output for output in _outputs(job)}
    assert set(outputs) == {"source", "9:16", "1:1", "4:5", "16:9"}
    for name, output in outputs.items():
        found = _streams(storage.output_path(output))
        assert (found["width"], found["height"]) == (output.width, output.height)
        assert output.width % 2 == 0 and output.height % 2 == 0
        if name == "source":
            assert (output.width, output.height) == (320, 240)
            continue
        assert output.width / output.height == pytest.approx(RATIOS[name], rel=0.02)
        if fit == "crop":  # the largest region of the ratio, at 1x: never more than the source
            assert output.width <= 320 and output.height <= 240 and (output.width == 320 or output.height == 240)
        else:  # the smallest frame of the ratio that holds the whole source at 1x
            assert output.width >= 318 and output.height >= 238 and (output.width <= 428 and output.height <= 570)
    if fit == "crop":
        assert (outputs["9:16"].width, outputs["9:16"].height) == (134, 240)
    else:
        assert (outputs["9:16"].width, outputs["9:16"].height) == (320, 568)


def test_a_large_source_gets_the_standard_sizes_and_crop_of_a_narrower_one_is_cut_at_1x():
    assert frame_size("9:16", "pad", 1920, 1080) == (1080, 1920)
    assert frame_size("16:9", "crop", 3840, 2160) == (1920, 1080)
    assert frame_size("1:1", "blur", 1920, 1080) == (1080, 1080)
    assert frame_size("4:5", "crop", 2160, 2700) == (1080, 1350)
    assert frame_size("9:16", "crop", 1920, 1080) == (606, 1080)  # the region is 606 wide: not scaled up
    assert frame_size("source", "crop", 1921, 1079) == (1920, 1078)


def test_pad_bands_are_plain_and_blur_bands_are_not(post_job):
    padded = post_job(variations=1, run=True, fields={"formats": "9:16", "fit": "pad"})
    blurred = post_job(variations=1, run=True, fields={"formats": "9:16", "fit": "blur"})
    for job, plain in ((padded, True), (blurred, False)):
        (output,) = _outputs(job)
        frame = _frame(storage.output_path(output))
        band = frame[20:140, 20:-20]  # the top band, inside the rotation's edge
        assert (band.std() < 3 and band.mean() < 30) if plain else band.std() > 3, (job.fit, band.std(), band.mean())


def test_a_crop_follows_the_focus_point():
    left = placement_filter("9:16", "crop", 1920, 1080, focus=type("F", (), {"x": 0.0, "y": 0.5})())
    right = placement_filter("9:16", "crop", 1920, 1080, focus=type("F", (), {"x": 1.0, "y": 0.5})())
    assert left.startswith("crop=606:1080:0:0") and right.startswith("crop=606:1080:1314:0")


def test_a_variation_has_the_same_effects_in_every_format_and_the_job_echoes_its_choices(api, post_job):
    job = post_job(variations=2, run=True, fields={"formats": "9:16,1:1", "strength": "strong", "fit": "blur"})
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert (body["formats"], body["fit"], body["strength"], body["mirror"]) == (
        ["9:16", "1:1"],
        "blur",
        "strong",
        False,
    )
    assert body["total_variations"] == body["completed_variations"] == 4
    outputs = body["sources"][0]["outputs"]
    assert len(outputs) == 4
    for index in (0, 1):
        same = [o for o in outputs if o["variation_index"] == index]
        assert {o["format"] for o in same} == {"9:16", "1:1"}
        assert same[0]["effects"] == same[1]["effects"]
    assert outputs[0]["effects"] != [o for o in outputs if o["variation_index"] == 1][0]["effects"]
    assert all(1.03 <= o["effects"]["zoom"] <= 1.06 and 0.95 <= o["effects"]["speed"] <= 1.05 for o in outputs)


def test_speed_sets_the_length_and_the_audio_plays_as_long_as_the_video(post_job):
    job = post_job(variations=3, run=True, seconds=2, fields={"strength": "strong"})
    for output in _outputs(job):
        speed = output.effects["speed"]
        assert speed != 1
        found = _streams(storage.output_path(output))
        assert found["video"] == pytest.approx(2 / speed, abs=0.02), (speed, found)
        assert found["audio"] == pytest.approx(found["video"], abs=0.03), (speed, found)
        assert output.seconds == pytest.approx(2 / speed, abs=0.02)


def _ssim_by_ffmpeg(first, second, *, speed: float = 1.0) -> float:
    """The test's own figure: the mean SSIM (FFmpeg's ssim filter, its All) of every frame of `first`, timed
    back to the source by its speed, against `second`."""
    graph = f"[0:v]setpts=(PTS-STARTPTS)*{speed},fps=25[a];[1:v]setpts=PTS-STARTPTS,fps=25[b];[a][b]ssim=stats_file=-"
    command = [ffmpeg_binary(), "-hide_banner", "-nostats", "-i", str(first), "-i", str(second)]
    found = subprocess.run([*command, "-filter_complex", graph, "-f", "null", "-"], capture_output=True, check=True)
    values = [float(f[4:]) for line in found.stdout.decode().splitlines() for f in line.split() if f.startswith("All:")]
    return sum(values) / len(values)


def _lossless(source, chain: str, path):
    command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(source), "-vf", chain or "null"]
    subprocess.run([*command, "-c:v", "ffv1", "-an", str(path)], check=True)
    return path


@pytest.mark.parametrize("strength", ["subtle", "strong"])
def test_the_ssim_is_the_variation_against_the_source_in_the_same_format(post_job, clips, tmp_path, strength):
    """The job's figure against the test's: every frame of the variation's effects and of the source in the
    same format, rendered losslessly apart, compared whole. The job's is measured in the batch, on the frames
    its encoder gets (two a second); the encoded file is further off by the encoder's own loss."""
    job = post_job(variations=2, run=True, seconds=2, fields={"formats": "source,1:1", "strength": strength})
    source = clips(seconds=2)
    for output in _outputs(job):
        placement = placement_filter(output.format, job.fit, 320, 240)
        effects = Effects.from_dict(output.effects)
        variation = _lossless(source, ",".join(filter(None, [placement, effects.filter_chain()])), tmp_path / "v.mkv")
        reference = _lossless(source, placement, tmp_path / "r.mkv")
        ours, theirs = output.ssim, _ssim_by_ffmpeg(variation, reference)
        assert 0 < ours <= 1 and ours == pytest.approx(theirs, abs=0.02), (output.format, strength, ours, theirs)
        encoded = _ssim_by_ffmpeg(storage.output_path(output), reference, speed=effects.speed)
        assert encoded == pytest.approx(ours, abs=0.08), (output.format, strength, ours, encoded)
        for path in (variation, reference):
            path.unlink()


def test_mirror_only_when_asked_and_the_ssim_tells_the_effects_not_the_flip(post_job, clips):
    plain = post_job(variations=2, run=True)
    mirrored = post_job(variations=2, run=True, fields={"mirror": "true"})
    assert not plain.mirror and mirrored.mirror
    source = _frame(clips())
    for job, flipped in ((plain, False), (mirrored, True)):
        for output in _outputs(job):
            assert output.effects["mirror"] is flipped
            frame = _frame(storage.output_path(output))
            as_is, flipped_source = np.abs(frame - source).mean(), np.abs(frame - np.fliplr(source)).mean()
            assert (flipped_source < as_is / 2) if flipped else (as_is < flipped_source / 2), (as_is, flipped_source)
            assert output.ssim > 0.6  # measured against the source mirrored too: the flip itself is no change


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"formats": "9:16,3:2"}, "formats", ["'3:2'", "9:16"]),
        ({"fit": "stretch"}, "fit", ["'stretch'", "crop, blur, pad"]),
        ({"strength": "extreme"}, "strength", ["'extreme'", "subtle, medium, strong"]),
        ({"mirror": "maybe"}, "mirror", ["true or false"]),
        ({"focus": "face"}, "focus", ["'face'", "auto"]),
        ({"focus_x": "1.5"}, "focus_x", ["0 to 1"]),
        ({"focus_y": "nan"}, "focus_y", ["0 to 1"]),
        ({"formats": "source,9:16,1:1,4:5,16:9", "variations": 20}, "variations", ["MAX_OUTPUTS_PER_JOB"]),
    ],
)
def test_a_bad_choice_is_refused_by_its_name_and_leaves_nothing(
    api, upload, refused, nothing_left, settings, fields, field, words
):
    settings.MAX_OUTPUTS_PER_JOB = 60
    body = {"videos": [upload("a.mp4")], "variations": 1, **fields}
    response = api.post("/api/jobs/", body, format="multipart")
    refused(response, 400, *words)
    assert response.json()["field"] == field


def test_the_outputs_limit_counts_videos_variations_and_formats(api, upload, refused, settings):
    settings.MAX_OUTPUTS_PER_JOB = 6
    body = {"videos": [upload("a.mp4"), upload("b.mp4")], "variations": 2, "formats": ["9:16", "1:1"]}
    refused(api.post("/api/jobs/", body, format="multipart"), 400, "2 videos x 2 variations x 2 formats = 8 videos")
    body = {**body, "videos": [upload("a.mp4"), upload("b.mp4")], "formats": ["9:16"]}
    assert api.post("/api/jobs/", body, format="multipart").status_code == 201


def test_the_reservation_covers_every_format_at_the_slowest_speed(post_job, reservation):
    one = post_job(variations=2, fields={"formats": "source"})
    three = post_job(variations=2, fields={"formats": "9:16,1:1,4:5", "strength": "strong"})
    assert one.reserved_bytes == reservation(2)
    outputs_part = three.reserved_bytes - reservation(0)
    assert outputs_part > 3 * (one.reserved_bytes - reservation(0))  # three formats, each up to 1/0.95 as long


def test_make_more_keeps_the_choices_or_changes_them(api, post_job):
    job = post_job(variations=1, run=True, fields={"formats": "9:16,1:1", "fit": "pad", "strength": "medium"})
    kept = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1}, format="json").json()
    assert (kept["formats"], kept["fit"], kept["strength"]) == (["9:16", "1:1"], "pad", "medium")
    changed = api.post(
        f"/api/jobs/{job.pk}/reprocess/", {"variations": 2, "formats": ["16:9"], "strength": "strong"}, format="json"
    ).json()
    assert (changed["formats"], changed["fit"], changed["strength"], changed["total_variations"]) == (
        ["16:9"],
        "pad",
        "strong",
        2,
    )
    bad = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1, "strength": "loud"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "strength"


@pytest.mark.usefixtures("plain_output_names")
def test_the_zip_has_a_folder_per_format_and_a_manifest_with_every_field(api, post_job):
    job = post_job(["promo.mp4"], variations=2, run=True, fields={"formats": ["9:16", "source"]})
    response = api.get(f"/api/jobs/{job.pk}/download/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "manifest.json",
        "promo/9x16/promo_v01.mp4",
        "promo/9x16/promo_v02.mp4",
        "promo/source/promo_v01.mp4",
        "promo/source/promo_v02.mp4",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["formats"] == ["9:16", "source"] and manifest["strength"] == "subtle"
    row = next(r for r in manifest["outputs"] if r["file"] == "promo/9x16/promo_v01.mp4")
    assert (row["format"], row["width"], row["height"]) == ("9:16", 134, 240)
    assert {"seconds", "effects", "ssim", "size"} <= set(row) and row["ssim"] > 0


def test_focus_auto_keeps_a_subject_near_the_edge_in_a_9_16_crop(api, tmp_path):
    clip = make_edge_subject_clip(tmp_path / "edge.mp4")
    jobs = {}
    for focus in ("", "auto"):
        body = {"videos": [SimpleUploadedFile("edge.mp4", clip.read_bytes())], "variations": 1, "formats": "9:16"}
        response = api.post("/api/jobs/", {**body, "focus": focus}, format="multipart")
        assert response.status_code == 201, response.content
        runner.run_job(response.json()["id"])
        jobs[focus] = Job.objects.get(pk=response.json()["id"])
    source = jobs["auto"].sources.get()
    assert source.focus_x > 0.8 and 0.3 < source.focus_y < 0.7  # the pattern's centre is at x 0.89
    assert jobs[""].sources.get().focus_x is None
    centred, followed = (_frame(storage.output_path(_outputs(jobs[f])[0])) for f in ("", "auto"))
    assert centred.std() < 5  # plain grey: the pattern was cut off
    assert followed.std() > 20  # the pattern is in the frame


@pytest.mark.usefixtures("plain_output_names")
def test_one_variation_downloads_under_a_name_with_its_format(api, post_job):
    job = post_job(["promo.mp4"], variations=1, run=True, fields={"formats": "9:16,1:1"})
    names = set()
    for output in _outputs(job):
        response = api.get(f"/api/jobs/{job.pk}/outputs/{output.pk}/file/?download=1")
        names.add(response["Content-Disposition"])
    assert names == {'attachment; filename="promo_v01_9x16.mp4"', 'attachment; filename="promo_v01_1x1.mp4"'}


@pytest.mark.parametrize(
    ("size", "fit"), [("176x144", "blur"), ("2000x16", "blur"), ("16x2000", "pad"), ("2x2", "crop")]
)
def test_odd_and_tiny_sources_make_every_format(post_job, size, fit):
    """A background blurred on a frame smaller than the blur, a very wide or tall source, a 2x2 one."""
    job = post_job(variations=1, run=True, size=size, audio=False, fields={"formats": "9:16,1:1,16:9", "fit": fit})
    assert job.status == "completed", job.error
    for output in _outputs(job):
        found = _streams(storage.output_path(output))
        assert (found["width"], found["height"]) == (output.width, output.height)


def test_a_video_shown_rotated_is_placed_as_it_is_shown(api, tmp_path):
    """A phone video stored 320x180 with a 90° display rotation is shown 180x320: its formats start from that."""
    plain = make_clip(tmp_path / "plain.mp4", size="320x180", audio=False)
    rotated = tmp_path / "upright.mp4"
    command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-display_rotation", "90", "-i", str(plain)]
    subprocess.run([*command, "-c", "copy", str(rotated)], check=True)
    body = {"videos": [SimpleUploadedFile("upright.mp4", rotated.read_bytes())], "variations": 1}
    response = api.post("/api/jobs/", {**body, "formats": "source,16:9,9:16", "fit": "crop"}, format="multipart")
    assert response.status_code == 201, response.content
    runner.run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "completed", job.error
    source = job.sources.get()
    assert (source.width, source.height) == (180, 320)
    sizes = {output.format: (output.width, output.height) for output in _outputs(job)}
    assert sizes == {"source": (180, 320), "9:16": (180, 320), "16:9": (180, 100)}
    for output in _outputs(job):
        found = _streams(storage.output_path(output))
        assert (found["width"], found["height"]) == (output.width, output.height)


def test_outputs_at_different_speeds_do_not_stall_one_another(post_job, settings):
    """Five retimed outputs of one batch, their timelines drifting apart: with one shared audio decoder FFmpeg
    stalled for good a few seconds in (each retimed output now reads its audio from an input of its own)."""
    settings.STALL_SECONDS = 10
    job = post_job(variations=5, run=True, seconds=8.0, fields={"strength": "strong"})
    assert job.status == "completed", job.error
    assert len({output.effects["speed"] for output in _outputs(job)}) == 5
