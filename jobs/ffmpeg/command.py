"""The FFmpeg command line of a batch: one decode, one filter chain and encoder per output, the thumbnails."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
from django.conf import settings

from jobs.ffmpeg.bounds import (
    BUFFER_FACTOR,
    COPYABLE_AAC_PROFILES,
    REFERENCE_MAX_BIT_RATE,
    SSIM_SAMPLES_PER_SECOND,
    THUMBNAIL_MAX_HEIGHT,
    THUMBNAIL_WIDTH,
)
from jobs.ffmpeg.placement import LINK_TAG

STATS_PERIOD_SECONDS = 0.1


@dataclass(frozen=True)
class EncodeSettings:
    """What a batch's outputs share: the video rate cap, and whether the source's audio is copied as it is
    (AAC LC or HE-AAC, mono or stereo, up to 48 kHz: what every player takes, and every packet within AAC's
    limits as the probe measured them, so that a copy stays within the output's bound) instead of encoded
    again."""

    max_bit_rate: int = REFERENCE_MAX_BIT_RATE
    copy_audio: bool = False
    # x264 threads per output. A batch already runs one encoder per output side by side, plus the decoder:
    # more threads per encoder only add contention (bench/encode.py measures 1, 2 and auto).
    threads: int = 1

    @classmethod
    def for_source(
        cls,
        audio_codec: str = "",
        audio_profile: str = "",
        audio_channels: int = 0,
        audio_sample_rate: int = 0,
        audio_bounded: bool = False,
    ) -> EncodeSettings:
        copy = (
            audio_bounded
            and audio_codec == "aac"
            and audio_profile in COPYABLE_AAC_PROFILES
            and 1 <= audio_channels <= 2
            and 0 < audio_sample_rate <= 48_000
        )
        return cls(copy_audio=copy)


DEFAULT_ENCODING = EncodeSettings()


@dataclass(frozen=True)
class ThumbnailSpec:
    """One more output of a batch: the frame at `at_seconds` (of the source, or of a variation: through its
    filter chain), 128 px wide (narrower for a frame more than 16 times taller than wide: WebP and the pages
    want a bounded height), as WebP. Written under a temporary name and renamed (image2's atomic_writing),
    so a file at `path` is always whole. It never fails the batch: a source shorter than `at_seconds` gives
    no file, and so does a write that fails (the job's folder deleted meanwhile, a full disk); the
    variations go on."""

    path: Path
    at_seconds: float
    width: int = THUMBNAIL_WIDTH
    max_height: int = THUMBNAIL_MAX_HEIGHT

    @property
    def temporary(self) -> Path:
        """Where image2's atomic_writing writes before the rename: left behind by a killed FFmpeg."""
        return self.path.with_name(self.path.name + ".tmp")


@dataclass(frozen=True)
class OutputSpec:
    """One variation of a batch in one format: the placement chain puts the source into the format's frame,
    the filter chain (its effects) works on that frame, and `speed` retimes video and audio (pitch kept)."""

    path: Path
    filter_chain: str
    max_seconds: float | None = None  # -t: no longer than the source (at its speed), whatever its header says
    max_bytes: int | None = None  # -fs: reaching it fails the batch (a truncated file is never kept)
    thumbnail: ThumbnailSpec | None = None  # the variation's own thumbnail, from the same decode
    placement: str = ""  # jobs.ffmpeg.placement.placement_filter: "" keeps the source's frame
    speed: float = 1.0
    # Where FFmpeg's ssim filter writes the per-frame SSIM of this output's frames against the placement
    # alone (no effects), sampled SSIM_SAMPLES_PER_SECOND times a second of source time; None: not measured.
    ssim_path: Path | None = None
    mirrored: bool = False  # the SSIM reference is mirrored too: the figure tells the effects, not the flip

    def paths(self) -> list[Path]:
        """Every file FFmpeg may write for this output."""
        thumbnail = [self.thumbnail.path, self.thumbnail.temporary] if self.thumbnail else []
        return [self.path, *thumbnail, *([self.ssim_path] if self.ssim_path else [])]

    @property
    def video_chain(self) -> str:
        return ",".join(filter(None, [self.placement, self.filter_chain]))


# The first frame of each 1/SSIM_SAMPLES_PER_SECOND of source time: the same frames on both sides of the
# comparison, since both are picked before any retiming.
_PERIOD = f"floor(t*{SSIM_SAMPLES_PER_SECOND})-floor(prev_selected_t*{SSIM_SAMPLES_PER_SECOND})"
_SSIM_SAMPLE = f"select='isnan(prev_selected_t)+gte({_PERIOD},1)'"


def ffmpeg_binary() -> str:
    if settings.FFMPEG_BINARY:
        return settings.FFMPEG_BINARY
    return imageio_ffmpeg.get_ffmpeg_exe()


def _input(source: Path) -> list[str]:
    """Read the upload as what the probe accepted (the MP4/MOV demuxer), from a local file only:
    no guessing from its bytes, no protocol (http, concat, ...) a crafted file could ask for. Its decoder
    makes no frame over MAX_PIXELS, whatever size the stream switches to after the probe's first frame
    (FFmpeg then goes on without those frames: run() fails the batch, FrameTooLarge)."""
    return ["-max_pixels", str(settings.MAX_PIXELS), "-f", "mov", "-protocol_whitelist", "file", "-i", str(source)]


def encode_command(
    source: Path,
    outputs: Sequence[OutputSpec],
    encoding: EncodeSettings = DEFAULT_ENCODING,
    thumbnail: ThumbnailSpec | None = None,
) -> list[str]:
    """One process, one decode, one `-vf` chain and encoder per output, and the thumbnail if asked for.

    A retimed output reads its audio from an input of its own (the same file, its video not demuxed): with
    one audio decoder shared by outputs at different speeds, FFmpeg 9's scheduler stalled for good once their
    timelines drifted apart (5 outputs of a 10 s 1080p clip at strong strength stopped at 3 s)."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", *_input(source)]
    audio_input: dict[int, int] = {}
    for number, output in enumerate(outputs):
        if output.speed != 1:
            audio_input[number] = len(audio_input) + 1
            cmd += ["-vn", "-sn", "-dn", *_input(source)]
    # FFmpeg reads its keyboard ("q") and writes its progress once every stats period (0.5 s by default):
    # at 0.1 s a stop starts up to 0.4 s sooner (bench/cancel.py).
    cmd += ["-progress", "pipe:1", "-stats_period", str(STATS_PERIOD_SECONDS)]
    rate = encoding.max_bit_rate
    for number, output in enumerate(outputs):
        cmd += _video_input(number, output, audio_input.get(number, 0))
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
        cmd += ["-threads", str(encoding.threads)]
        cmd += ["-maxrate", str(rate), "-bufsize", str(int(rate * BUFFER_FACTOR))]
        if output.speed != 1:  # the audio is retimed too: encoded again, whatever it was
            cmd += ["-af", f"atempo={output.speed}", "-c:a", "aac", "-b:a", "128k"]
        else:
            cmd += ["-c:a", "copy"] if encoding.copy_audio else ["-c:a", "aac", "-b:a", "128k"]
        cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart", "-f", "mp4"]
        if output.max_seconds is not None:
            cmd += ["-t", f"{output.max_seconds:.3f}"]
        if output.max_bytes is not None:
            cmd += ["-fs", str(output.max_bytes)]
        cmd += [str(output.path)]
        if output.thumbnail is not None:
            cmd += _thumbnail_output(output.thumbnail, output.filter_chain, output.placement)
    if thumbnail is not None:
        cmd += _thumbnail_output(thumbnail)
    return cmd


def _video_input(number: int, output: OutputSpec, audio_from: int = 0) -> list[str]:
    """The -map arguments of an output's video (and audio). A plain `-vf` chain, unless it is retimed or its
    SSIM is measured: then a filter graph of its own (FFmpeg runs each graph in a thread of its own, as it
    does each -vf), whose second branch compares sampled frames with the placement alone, before the
    retiming, so that the frames compared are matched by source time."""
    if output.ssim_path is None and output.speed == 1:
        return ["-map", "0:v:0", "-map", "0:a:0?", "-vf", output.video_chain]
    label = f"out{number}"
    timing = f"setpts=PTS/{output.speed}" if output.speed != 1 else "null"
    if output.ssim_path is None:
        graph = f"[0:v:0]{output.video_chain},{timing}[{label}]"
    else:
        flip = "hflip" if output.mirrored else ""
        reference = ",".join(filter(None, [_SSIM_SAMPLE, _renamed_apart(output.placement), flip]))
        stats = _graph_escape(str(output.ssim_path))
        graph = (
            f"[0:v:0]split=2[{label}_src][{label}_ref_in];"
            f"[{label}_src]{output.video_chain},split=2[{label}_enc][{label}_cmp];"
            f"[{label}_enc]{timing}[{label}];"
            f"[{label}_cmp]{_SSIM_SAMPLE}[{label}_sample];"
            f"[{label}_ref_in]{reference}[{label}_ref];"
            f"[{label}_sample][{label}_ref]ssim=stats_file={stats},nullsink"
        )
    # A retimed stream keeps every frame at its new time: in the encoder's default time base (1 / the old frame
    # rate) the new times rounded back onto the old grid, and a video near 1x kept its old length.
    keep_times = ["-enc_time_base:v", "1/90000"] if output.speed != 1 else []
    return ["-filter_complex", graph, "-map", f"[{label}]", "-map", f"{audio_from}:a:0?", *keep_times]


def _renamed_apart(placement: str) -> str:
    """The placement chain again in the same graph, its inner links (a blur's) renamed apart."""
    return placement.replace(f"[{LINK_TAG}_", "[ref_")


def _graph_escape(path: str) -> str:
    """A file name as an option value inside a filter graph: escaped for the option, then for the graph."""
    option = re.sub(r"([\\':])", r"\\\1", path)
    return re.sub(r"([\\'\[\],;])", r"\\\1", option)


def _thumbnail_output(thumbnail: ThumbnailSpec, filter_chain: str = "", placement: str = "") -> list[str]:
    """The output arguments of a thumbnail: frames before its moment are dropped first, then the frame is put
    into the format and scaled down before the effects (which work in terms of the frame's size), so the
    effects run on one small frame: their per-pixel state (perspective's map) stays thumbnail-sized.
    The output ends after that frame."""
    box = f"{thumbnail.width}:{thumbnail.max_height}:force_original_aspect_ratio=decrease:force_divisible_by=2"
    select = f"select='gte(t,{thumbnail.at_seconds:.3f})'"
    chain = ",".join(filter(None, [select, placement, f"scale={box}", filter_chain]))
    # Through the tee muxer beside a null sink, with onfail=ignore: a failed write ends only that slave.
    image = f"[f=image2:update=1:atomic_writing=1:onfail=ignore]{_tee_escape(str(thumbnail.path))}"
    return ["-map", "0:v:0", "-vf", chain, "-frames:v", "1", "-c:v", "libwebp", "-f", "tee", f"{image}|[f=null]-"]


def _tee_escape(path: str) -> str:
    """A file name as one slave of the tee muxer: its separators and quotes escaped."""
    return re.sub(r"([\\'|\[\]])", r"\\\1", path)


def mean_ssim(stats: str) -> float | None:
    """The mean of the per-frame "All" values of an ssim filter's stats file; None without a frame."""
    values = [float(field[4:]) for line in stats.splitlines() for field in line.split() if field.startswith("All:")]
    return round(sum(values) / len(values), 5) if values else None
