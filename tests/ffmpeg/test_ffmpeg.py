from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import av
import psutil
import pytest

from jobs import ffmpeg
from jobs.ffmpeg.effects import effects_for, rotation_filter
from jobs.worker import procs
from tests.media import make_clip, make_size_switching_clip, with_one_fat_audio_packet, without_first_packets
from tests.workers import alive, wait_for


def test_probe_reads_duration_size_and_audio(clips):
    result = ffmpeg.probe(clips(seconds=1.0))
    assert result.width == 320 and result.height == 240
    assert result.duration == pytest.approx(1.0, abs=0.1)
    assert result.has_audio
    assert "mov" in result.format_name.split(",")  # read with the MP4/MOV demuxer


def test_probe_accepts_a_file_object(clips):
    result = ffmpeg.probe(io.BytesIO(clips(seconds=1.0).read_bytes()))
    assert result.width == 320


@pytest.mark.parametrize(
    "content", [b"this is not a video\n" * 100, b"\x00" * 4096, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100]
)
def test_probe_refuses_garbage(tmp_path, content):
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(path)


def test_encode_batch_writes_every_output_and_reports_progress(clips, tmp_path):
    source = clips(seconds=2.0)
    specs = [ffmpeg.OutputSpec(tmp_path / f"out{i}.mp4", effects_for(1, 0, i).filter_chain()) for i in range(3)]
    seen = []
    result = ffmpeg.encode(source, specs, job_id="t1", on_progress=seen.append, should_stop=lambda: False)
    assert result.returncode == 0 and not result.stopped
    assert seen and seen[-1] == pytest.approx(2.0, abs=0.2)
    for spec in specs:
        with av.open(str(spec.path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert container.streams.audio
            assert container.duration / av.time_base == pytest.approx(2.0, abs=0.2)
            assert "title" not in container.metadata


def test_the_encoder_runs_under_sched_idle(clips, tmp_path, paced_ffmpeg):
    job_id = f"sched-idle-{uuid.uuid4().hex}"
    policies = set()

    def should_stop() -> bool:  # asked every 0.05 s while FFmpeg runs
        # This process's children, not every process's environment (procs.tagged_processes): under CI's
        # load, scanning a few hundred processes took long enough to miss the whole encode once.
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if "ffmpeg" in process.exe() and process.environ().get(procs.JOB_ENV) == job_id:
                    policies.add(os.sched_getscheduler(process.pid))  # past chrt, nice and setpriv
        return False

    spec = ffmpeg.OutputSpec(tmp_path / "out.mp4", effects_for(1, 0, 0).filter_chain())
    assert ffmpeg.encode(clips(seconds=3.0), [spec], job_id=job_id, should_stop=should_stop).returncode == 0
    assert policies == {os.SCHED_IDLE}


def test_encode_failure_raises_with_the_stderr_tail(clips, tmp_path):
    spec = ffmpeg.OutputSpec(tmp_path / "out.mp4", "no_such_filter=1")
    with pytest.raises(ffmpeg.FFmpegError) as info:
        ffmpeg.encode(clips(), [spec], job_id="t2")
    assert "no_such_filter" in info.value.stderr_tail


def test_ffmpeg_binary_setting_is_used(settings, clips, tmp_path):
    settings.FFMPEG_BINARY = "/nonexistent/ffmpeg"
    with pytest.raises(ffmpeg.FFmpegError) as info:
        ffmpeg.encode(clips(), [ffmpeg.OutputSpec(tmp_path / "o.mp4", "null")], job_id="t3")
    assert "/nonexistent/ffmpeg" in str(info.value)


def test_thumbnail_is_one_more_output_of_the_batch_128_px_wide_webp(clips, tmp_path):
    target = tmp_path / "thumb.webp"
    specs = [ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")]
    ffmpeg.encode(clips(), specs, job_id="t4", thumbnail=ffmpeg.ThumbnailSpec(target, at_seconds=0.3))
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (128, 96)
    assert sorted(path.name for path in tmp_path.glob("*.*")) == ["out.mp4", "thumb.webp"]  # no temporary left


def test_each_variation_gets_its_own_thumbnail_with_its_effects(clips, tmp_path):
    """One more output per variation, through the variation's own filter chain: the thumbnails of two
    variations differ from each other and from the source's frame."""
    brighter, darker = "eq=brightness=0.3", "eq=brightness=-0.3"
    specs = [
        ffmpeg.OutputSpec(tmp_path / f"v{i}.mp4", chain, thumbnail=ffmpeg.ThumbnailSpec(tmp_path / f"v{i}.webp", 0.3))
        for i, chain in enumerate([brighter, darker])
    ]
    ffmpeg.encode(clips(), specs, job_id="t9", thumbnail=ffmpeg.ThumbnailSpec(tmp_path / "source.webp", 0.3))
    means = {}
    for name in ("v0", "v1", "source"):
        with av.open(str(tmp_path / f"{name}.webp")) as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (128, 96)
        means[name] = frame.to_ndarray(format="gray").mean()
    assert means["v0"] > means["source"] + 20 > means["v1"] + 40
    assert sorted(path.name for path in tmp_path.glob("*.*")) == [
        "source.webp",
        "v0.mp4",
        "v0.webp",
        "v1.mp4",
        "v1.webp",
    ]
    assert specs[0].paths() == [tmp_path / "v0.mp4", tmp_path / "v0.webp", tmp_path / "v0.webp.tmp"]


def test_the_thumbnail_of_a_very_tall_video_is_narrower_and_the_batch_succeeds(clips, tmp_path):
    """128 px wide would make a 32x720 frame 2880 px tall; the thumbnail stays within 128x2048."""
    target = tmp_path / "thumb.webp"
    specs = [ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")]
    ffmpeg.encode(clips(size="32x720"), specs, job_id="t6", thumbnail=ffmpeg.ThumbnailSpec(target, at_seconds=0.3))
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
    assert frame.height == 2048 and frame.width in (90, 92)


def test_a_thumbnail_that_cannot_be_written_does_not_fail_the_batch(clips, tmp_path):
    """E.g. the job deleted while its FFmpeg is being stopped: its folder is gone when the frame comes."""
    specs = [ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")]
    gone = ffmpeg.ThumbnailSpec(tmp_path / "gone" / "thumb.webp", at_seconds=0.3)
    ffmpeg.encode(clips(), specs, job_id="t7", thumbnail=gone)
    assert (tmp_path / "out.mp4").stat().st_size > 0 and not gone.path.parent.exists()


def test_the_thumbnail_path_may_hold_the_tee_muxers_special_characters(clips, tmp_path):
    folder = tmp_path / "a|b[c]'d\\e"
    folder.mkdir()
    target = folder / "thumb.webp"
    ffmpeg.encode(clips(), [ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")], job_id="t8",
                  thumbnail=ffmpeg.ThumbnailSpec(target, at_seconds=0.3))  # fmt: skip
    assert [path.name for path in folder.iterdir()] == ["thumb.webp"]


def test_a_source_shorter_than_the_thumbnail_time_gives_no_thumbnail_and_the_batch_succeeds(clips, tmp_path):
    target = tmp_path / "thumb.webp"
    specs = [ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")]
    ffmpeg.encode(clips(seconds=1), specs, job_id="t5", thumbnail=ffmpeg.ThumbnailSpec(target, at_seconds=5))
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert not target.exists()


SHOW_TAG_NICENESS_AND_POLICY = "import os; print(os.environ['VIDEOJOBS_JOB'], os.nice(0), os.sched_getscheduler(0))"


def test_child_carries_the_job_tag_and_runs_under_a_death_signal_at_the_lowest_priority(settings):
    """setpriv --pdeathsig is used, VIDEOJOBS_JOB marks the process, and it runs under SCHED_IDLE at
    ENCODE_NICENESS."""
    settings.ENCODE_NICENESS = 7
    cmd = ffmpeg.process._with_death_signal([sys.executable, "-c", SHOW_TAG_NICENESS_AND_POLICY])
    assert cmd[:3] == [shutil.which("chrt"), "--idle", "0"]
    assert cmd[-7:-3] == [shutil.which("setpriv"), "--pdeathsig", "KILL", "--"]
    out = subprocess.run(cmd, env=ffmpeg.process._child_env("job-xyz", 1), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["job-xyz", str(os.nice(0) + 7), str(os.SCHED_IDLE)]

    settings.ENCODE_NICENESS = 0
    settings.ENCODE_IDLE_SCHEDULING = False
    settings.ENCODE_MEMORY_BYTES = 0  # no memory limit either
    cmd = ffmpeg.process._with_death_signal([sys.executable, "-c", SHOW_TAG_NICENESS_AND_POLICY])
    assert cmd[0] == shutil.which("setpriv")
    out = subprocess.run(cmd, env=ffmpeg.process._child_env("job-xyz", 1), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["job-xyz", str(os.nice(0)), str(os.sched_getscheduler(0))]


def test_where_sched_idle_cannot_be_set_ffmpeg_still_runs_niced(tmp_path, monkeypatch, settings, caplog):
    """A container whose seccomp profile refuses sched_setscheduler makes chrt fail: tried once, logged,
    and FFmpeg runs with nice alone instead of not at all. (A chrt that fails stands in for that machine.)"""
    refusing = tmp_path / "chrt"
    refusing.write_text("#!/bin/sh\necho 'chrt: failed to set pid 0 policy: Operation not permitted' >&2\nexit 1\n")
    refusing.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ffmpeg.idle_scheduling_prefix.cache_clear()
    try:
        settings.ENCODE_NICENESS = 19
        cmd = ffmpeg.process._with_death_signal([sys.executable, "-c", SHOW_TAG_NICENESS_AND_POLICY])
        again = ffmpeg.process._with_death_signal(["true"])
    finally:
        ffmpeg.idle_scheduling_prefix.cache_clear()
    assert cmd[0] == shutil.which("nice") and again[0] == shutil.which("nice")
    assert [r.getMessage() for r in caplog.records if "SCHED_IDLE" in r.getMessage()] == [
        "FFmpeg runs without SCHED_IDLE (only nice): chrt failed: "
        "chrt: failed to set pid 0 policy: Operation not permitted"
    ]
    out = subprocess.run(cmd, env=ffmpeg.process._child_env("job-xyz", 1), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["job-xyz", str(min(19, os.nice(0) + 19)), str(os.sched_getscheduler(0))]


PROGRESS_EMITTER = """
import sys, time
for i in range(30):
    sys.stdout.write(f"out_time_us={i * 100000}\\nprogress=continue\\n"); sys.stdout.flush()
    time.sleep(0.1)
"""


def test_progress_is_reported_at_most_once_a_second():
    """A stand-in emits a progress block every 0.1 s for at least 3 s; the callback runs at most once a second."""
    calls = []
    started = time.monotonic()
    result = ffmpeg.run(
        [sys.executable, "-c", PROGRESS_EMITTER], job_id="t5", on_progress=lambda s: calls.append((time.monotonic(), s))
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0
    # Bounded by the run's own length (a loaded machine stretches it): one at its start, one a second
    # after, and so on, plus the final report.
    assert 2 <= len(calls) <= elapsed / ffmpeg.process.PROGRESS_INTERVAL + 2, (calls, elapsed)
    gaps = [b[0] - a[0] for a, b in zip(calls[:-2], calls[1:-1], strict=True)]  # the last call is the final report
    assert all(gap >= ffmpeg.process.PROGRESS_INTERVAL * 0.95 for gap in gaps), gaps
    assert calls[-1][1] == pytest.approx(2.9)


def test_a_child_dies_when_the_process_that_started_it_is_killed():
    """PR_SET_PDEATHSIG via setpriv: SIGKILL of the parent takes the child with it (no SIGPIPE needed).

    The parent says the child's pid once the child has become `sleep`: setpriv has set the death signal by
    then. A parent killed before that (a busy machine) leaves a child that never had it.
    """
    script = (
        "import subprocess, time, psutil; from jobs.ffmpeg.process import _with_death_signal; "
        "child = subprocess.Popen(_with_death_signal(['sleep', '60'])); "
        "deadline = time.monotonic() + 10\n"
        "while psutil.Process(child.pid).name() != 'sleep' and time.monotonic() < deadline: time.sleep(0.01)\n"
        "print(child.pid, flush=True); time.sleep(60)"
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=root)
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        wait_for(lambda: not alive(child), timeout=5, interval=0.02, message="the child to die with its parent")
    finally:
        if alive(child):
            child.kill()


def test_ffmpeg_reads_the_upload_as_mp4_mov_from_a_local_file_only(tmp_path):
    cmd = ffmpeg.encode_command(Path("/in.video"), [ffmpeg.OutputSpec(tmp_path / "o.mp4", "null")])
    assert cmd[cmd.index("-i") - 4 : cmd.index("-i") + 2] == [
        "-f",
        "mov",
        "-protocol_whitelist",
        "file",
        "-i",
        "/in.video",
    ]
    matroska = make_clip(tmp_path / "x.mkv", seconds=0.5, audio=False)  # a format the probe would have refused
    with pytest.raises(ffmpeg.FFmpegError):
        ffmpeg.encode(matroska, [ffmpeg.OutputSpec(tmp_path / "o.mp4", "null")], job_id="t6")


def test_outputs_are_bounded_in_time_and_size(clips, tmp_path):
    bounded = ffmpeg.OutputSpec(tmp_path / "o.mp4", "null", max_seconds=0.5, max_bytes=10**9)
    assert ffmpeg.encode_command(clips(), [bounded])[-5:] == ["-t", "0.500", "-fs", "1000000000", str(bounded.path)]
    ffmpeg.encode(clips(seconds=2.0), [bounded], job_id="t7")
    with av.open(str(bounded.path)) as container:
        assert container.duration / av.time_base == pytest.approx(0.5, abs=0.1)
    too_big = ffmpeg.OutputSpec(tmp_path / "big.mp4", "null", max_bytes=2000)
    with pytest.raises(ffmpeg.FFmpegError, match="output size limit reached"):
        ffmpeg.encode(clips(seconds=2.0), [too_big], job_id="t8")


def _ssim(first: Path, second: str, filters: str = "") -> float:
    """SSIM (all planes) of `first` against `second`: a file path, or a filter chain applied to `first`."""
    if second.endswith(".mp4"):
        cmd = ["-i", str(first), "-i", second, "-filter_complex", "[0:v][1:v]ssim"]
    else:
        cmd = ["-i", str(first), "-filter_complex", f"[0:v]split[a][b];[a]{filters}[x];[b]{second}[y];[x][y]ssim"]
    run = subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-hide_banner", *cmd, "-f", "null", "-"], capture_output=True, text=True, check=True
    )
    return float(run.stderr.rsplit("All:", 1)[1].split()[0])


@pytest.mark.parametrize("angle", [-0.0055, 0.01, -0.01])  # a wrong sign measures about 0.87 at 0.01 rad
def test_the_rotation_renders_as_ffmpegs_rotate_does(clips, angle):
    """The cheaper rotation (a perspective map) against FFmpeg's own bilinear rotate, same angle."""
    source = clips(seconds=1.0, size="640x360")
    assert _ssim(source, rotation_filter(angle), filters=f"rotate={angle}:fillcolor=black") >= 0.98


def test_a_variation_is_near_identical_to_its_source_yet_changed(clips, tmp_path):
    source = clips(seconds=1.0, size="640x360")
    specs = [ffmpeg.OutputSpec(tmp_path / f"v{i}.mp4", effects_for(7, 0, i).filter_chain()) for i in range(3)]
    ffmpeg.encode(source, specs, job_id="t-ssim")
    for spec in specs:
        assert 0.85 <= _ssim(spec.path, str(source)) <= 0.995, spec.path.name
    assert len({spec.path.read_bytes() for spec in specs}) == 3


def _audio_packets(path: Path) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return stream.codec_context.name, [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("copy", [True, False])
def test_aac_audio_is_copied_as_it_is_when_allowed(clips, tmp_path, copy):
    source = clips(seconds=1.0)
    spec = ffmpeg.OutputSpec(tmp_path / "out.mp4", effects_for(1, 0, 0).filter_chain())
    ffmpeg.encode(source, [spec], job_id="t-audio", encoding=ffmpeg.EncodeSettings(copy_audio=copy))
    codec, packets = _audio_packets(spec.path)
    assert codec == "aac"
    assert (packets == _audio_packets(source)[1]) is copy  # the very same packets, or encoded again


@pytest.mark.parametrize(
    ("facts", "copy"),
    [
        (("aac", "LC", 2, 48_000), True),
        (("aac", "LC", 1, 44_100), True),
        (("aac", "HE-AAC", 2, 48_000), True),
        (("aac", "LC", 6, 48_000), False),  # 5.1: encoded again, as stereo AAC that every player takes
        (("aac", "LC", 2, 96_000), False),
        (("aac", "LD", 2, 48_000), False),  # low-delay AAC: browsers do not play it
        (("aac", "LC", 2, 0), False),  # unknown rate
        (("mp3", "", 2, 44_100), False),
        (("", "", 0, 0), False),
    ],
)
def test_which_audio_is_copied(facts, copy):
    """Of streams whose every packet the probe found within AAC's limits (audio_bounded)."""
    assert ffmpeg.EncodeSettings.for_source(*facts, audio_bounded=True).copy_audio is copy


def test_the_video_rate_is_capped_as_the_reference_caps_it():
    command = ffmpeg.encode_command(Path("in.mp4"), [ffmpeg.OutputSpec(Path("o.mp4"), "null")])
    assert command[command.index("-maxrate") + 1] == "2500000"
    assert command[command.index("-bufsize") + 1] == "4000000"


def test_ffmpeg_reports_progress_and_reads_its_keyboard_ten_times_a_second(clips, tmp_path, paced_ffmpeg):
    """FFmpeg (7 and later) reads "q" once per stats period, when it writes its progress. At its default
    period (0.5 s) a "q" waited up to half a second: the cancel latency's largest part (bench/cancel.py)."""
    command = ffmpeg.encode_command(clips(seconds=2.0), [ffmpeg.OutputSpec(tmp_path / "o.mp4", "null")])
    assert command[command.index("-stats_period") + 1] == "0.1"
    started = time.monotonic()
    run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
    blocks = run.stdout.count("progress=")
    assert blocks >= 0.5 * (time.monotonic() - started) / 0.1  # about 10 a second; at 0.5 s, 3 in 1.5 s


def test_probe_reads_the_audio(clips):
    result = ffmpeg.probe(clips(seconds=1.0))
    assert (result.audio_codec, result.audio_profile, result.audio_channels, result.audio_sample_rate) == (
        "aac",
        "LC",
        1,
        44_100,
    )
    assert ffmpeg.probe(clips(seconds=1.0, audio=False)).audio_codec == ""


def test_the_probe_refuses_more_frames_than_any_allowed_video_has(tmp_path):
    """A stream of tiny raw frames at a huge rate cost 21 s of web CPU before the rate limit refused it."""
    clip = _raw_frames(tmp_path, rate=2000, seconds=2)
    with pytest.raises(ffmpeg.TooComplex, match="more than 1000 frames"):
        ffmpeg.probe(clip, stop_after_seconds=600, max_packets=1000)
    assert ffmpeg.probe(clip, max_packets=4000).fps == pytest.approx(2000)


def test_the_probe_has_a_cpu_budget(tmp_path):
    clip = _raw_frames(tmp_path, rate=2000, seconds=2)
    with pytest.raises(ffmpeg.TooComplex, match="too complex to inspect"):
        ffmpeg.probe(clip, cpu_seconds=0.0)


def _raw_frames(tmp_path, rate: int, seconds: int):
    path = tmp_path / "raw.mov"
    subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", f"color=s=2x2:r={rate}", "-t", str(seconds)]
        + ["-c:v", "rawvideo", "-pix_fmt", "rgb24", str(path)],
        check=True,
    )
    return path


def test_the_probe_measures_whether_the_audio_keeps_to_aacs_limits(clips, tmp_path):
    assert ffmpeg.probe(clips(seconds=1)).audio_bounded
    fat = with_one_fat_audio_packet(clips(seconds=1), tmp_path / "fat.mp4", 100_000)
    found = ffmpeg.probe(fat)
    assert (found.audio_codec, found.audio_profile, found.audio_bounded) == ("aac", "LC", False)
    assert not ffmpeg.EncodeSettings.for_source("aac", "LC", 1, 44100, audio_bounded=False).copy_audio
    assert ffmpeg.EncodeSettings.for_source("aac", "LC", 1, 44100, audio_bounded=True).copy_audio


def test_a_truncated_file_whose_video_stream_has_no_decoder_is_a_probe_error(tmp_path):
    """Found by the hostile-media fuzz: a tiny MP4 cut short left PyAV with no codec context (a 500)."""
    path = tmp_path / "tiny.mp4"
    subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=2x2:rate=30:duration=1"]
        + ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8359375)])
    with pytest.raises(ffmpeg.ProbeError):
        ffmpeg.probe(path)


def _probe_peak_rss(path: Path, max_pixels: int) -> int:
    """The probe in a process of its own: its peak RSS in bytes."""
    script = (
        "import os, resource, sys, django; sys.path.insert(0, '.'); "
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'videojobs.settings_test'; django.setup()\n"
        "from jobs import ffmpeg\n"
        f"try:\n    ffmpeg.probe({str(path)!r}, max_pixels={max_pixels})\nexcept ffmpeg.ProbeError:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
    )
    root = Path(__file__).resolve().parents[2]
    return int(
        subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True).stdout
    )


def test_opening_a_file_decodes_no_frame_over_max_pixels(tmp_path, clips):
    """Opening runs FFmpeg's stream analysis, which decoded a first frame of any size before the probe
    looked at it: a 160x120 header followed by 16384x8192 frames took 380 MB in the web process (70 MB for an
    ordinary clip); now the decoder refuses them there too."""
    switching = make_size_switching_clip(tmp_path / "switch.mp4", first="160x120", then="16384x8192", then_seconds=0.08)
    lying = without_first_packets(switching, tmp_path / "lying.mp4", 25)  # the 160x120 second is gone
    baseline = _probe_peak_rss(clips(seconds=1), 320 * 240)
    assert _probe_peak_rss(lying, 320 * 240) - baseline < 120 * 1024**2


def test_an_audio_track_ffmpeg_cannot_decode_is_refused_by_the_probe(clips, tmp_path):
    """It used to be accepted, and then every variation failed ("no decoder found")."""
    data = bytearray(clips(seconds=1).read_bytes().replace(b"mp4a", b"zzzz"))  # an unknown sample entry
    object_type = data.index(b"zzzz") + 57  # in its esds: 0x40 says AAC
    assert data[object_type] == 0x40
    data[object_type] = 0xC0  # a value no decoder claims
    path = tmp_path / "unknown-audio.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(ffmpeg.ProbeError, match="audio track is in a format the encoder cannot decode"):
        ffmpeg.probe(path)


@pytest.mark.parametrize(
    "line",
    [
        b"x264 [error]: malloc of size 399296 failed",  # the encoder's own allocation
        b"Error while decoding stream: Cannot allocate memory",
        b"pthread_create failed: Resource temporarily unavailable",
    ],
)
def test_a_failed_allocation_under_the_memory_limit_counts_as_out_of_memory(settings, line):
    settings.ENCODE_MEMORY_BYTES = 300 * 1024**2
    with tempfile.TemporaryFile() as stderr:
        stderr.write(b"[vost#0:0/libx264] some context\n" + line + b"\n")
        assert ffmpeg.process._out_of_memory(1, stderr)
        assert not ffmpeg.process._out_of_memory(1, io.BytesIO(b"Invalid data found when processing input\n"))
