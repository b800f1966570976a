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
    THUMBNAIL_MAX_HEIGHT,
    THUMBNAIL_WIDTH,
)

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
    path: Path
    filter_chain: str
    max_seconds: float | None = None  # -t: no longer than the source, whatever its header says
    max_bytes: int | None = None  # -fs: reaching it fails the batch (a truncated file is never kept)
    thumbnail: ThumbnailSpec | None = None  # the variation's own thumbnail, from the same decode

    def paths(self) -> list[Path]:
        """Every file FFmpeg may write for this output."""
        thumbnail = [self.thumbnail.path, self.thumbnail.temporary] if self.thumbnail else []
        return [self.path, *thumbnail]


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
    """One process, one decode, one `-vf` chain and encoder per output, and the thumbnail if asked for."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", *_input(source)]
    # FFmpeg reads its keyboard ("q") and writes its progress once every stats period (0.5 s by default):
    # at 0.1 s a stop starts up to 0.4 s sooner (bench/cancel.py).
    cmd += ["-progress", "pipe:1", "-stats_period", str(STATS_PERIOD_SECONDS)]
    rate = encoding.max_bit_rate
    for output in outputs:
        cmd += ["-map", "0:v:0", "-map", "0:a:0?", "-vf", output.filter_chain]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
        cmd += ["-threads", str(encoding.threads)]
        cmd += ["-maxrate", str(rate), "-bufsize", str(int(rate * BUFFER_FACTOR))]
        cmd += ["-c:a", "copy"] if encoding.copy_audio else ["-c:a", "aac", "-b:a", "128k"]
        cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart", "-f", "mp4"]
        if output.max_seconds is not None:
            cmd += ["-t", f"{output.max_seconds:.3f}"]
        if output.max_bytes is not None:
            cmd += ["-fs", str(output.max_bytes)]
        cmd += [str(output.path)]
        if output.thumbnail is not None:
            cmd += _thumbnail_output(output.thumbnail, output.filter_chain)
    if thumbnail is not None:
        cmd += _thumbnail_output(thumbnail)
    return cmd


def _thumbnail_output(thumbnail: ThumbnailSpec, filter_chain: str = "") -> list[str]:
    """The output arguments of a thumbnail: frames before its moment are dropped first, and the frame is
    scaled down before the chain (a variation's effects, which work in terms of the frame's size), so the
    chain runs on one small frame: its filters' per-pixel state (perspective's map) stays thumbnail-sized.
    The output ends after that frame."""
    box = f"{thumbnail.width}:{thumbnail.max_height}:force_original_aspect_ratio=decrease:force_divisible_by=2"
    chain = ",".join(filter(None, [f"select='gte(t,{thumbnail.at_seconds:.3f})'", f"scale={box}", filter_chain]))
    # Through the tee muxer beside a null sink, with onfail=ignore: a failed write ends only that slave.
    image = f"[f=image2:update=1:atomic_writing=1:onfail=ignore]{_tee_escape(str(thumbnail.path))}"
    return ["-map", "0:v:0", "-vf", chain, "-frames:v", "1", "-c:v", "libwebp", "-f", "tee", f"{image}|[f=null]-"]


def _tee_escape(path: str) -> str:
    """A file name as one slave of the tee muxer: its separators and quotes escaped."""
    return re.sub(r"([\\'|\[\]])", r"\\\1", path)
