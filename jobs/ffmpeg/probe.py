"""probe(): what an upload really holds, read by PyAV within a CPU, frame and pixel budget."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av

from jobs.ffmpeg.bounds import AAC_MAX_FRAME_BYTES_PER_CHANNEL, AUDIO_BOUND_BIT_RATE, AUDIO_FRAMES_PER_SECOND
from jobs.ffmpeg.errors import ProbeError, TooComplex


@dataclass(frozen=True)
class ProbeResult:
    duration: float  # measured from the stream's packets, not taken from the header
    width: int  # of a decoded frame
    height: int
    has_audio: bool
    format_name: str
    fps: float = 0.0  # video packets per second of the measured duration
    audio_codec: str = ""  # of the first audio stream: "aac", "mp3"...; "" without audio
    audio_profile: str = ""  # "LC", "HE-AAC"...; "" when the decoder names none
    audio_channels: int = 0
    audio_sample_rate: int = 0
    audio_bounded: bool = False  # every audio packet within AAC's limits: the stream may be copied (_AudioPackets)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe(
    source: str | os.PathLike | IO[bytes],
    stop_after_seconds: float | None = None,
    max_pixels: int | None = None,
    max_packets: int | None = None,
    cpu_seconds: float | None = None,
) -> ProbeResult:
    """What the stream really holds; ProbeError when it is not a readable video.

    A header can say anything, so the size comes from a decoded frame, and the
    duration and frame rate from walking the video packets (demuxing, not
    decoding: fast). The walk is bounded three ways, each cheaper than the
    file: it stops once the stream runs past `stop_after_seconds` (the caller
    refuses it anyway); it refuses a stream of more than `max_packets` frames
    (more than any allowed duration at any allowed rate can have); and it
    refuses a file whose inspection takes more than `cpu_seconds` of this
    thread's CPU (TooComplex).
    """
    started = time.thread_time()
    try:
        # Only the MP4/MOV demuxer, reading only this file: no format guessed from the bytes (hls,
        # concat, ...), no protocol a crafted file could ask for.
        opened = source if not isinstance(source, Path) else str(source)
        options = {"protocol_whitelist": "file"}
        if max_pixels is not None:  # opening decodes a first frame too (stream analysis): bounded as well
            options["max_pixels"] = str(max_pixels)
        with av.open(opened, format="mov", options=options) as container:
            if not container.streams.video:
                raise ProbeError("it has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise ProbeError("its video stream has no decoder")
            declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
            if max_pixels is not None and declared > max_pixels:  # refused before a huge frame is decoded
                width, height = stream.codec_context.width, stream.codec_context.height
                return ProbeResult(0.0, width, height, False, container.format.name, 0.0)
            stream.codec_context.thread_count = 1  # its CPU is this thread's: the budget sees all of it
            audio_stream = container.streams.audio[0] if container.streams.audio else None
            if audio_stream is not None and audio_stream.codec_context is None:
                raise ProbeError("its audio track is in a format the encoder cannot decode")
            audio = audio_stream.codec_context if audio_stream is not None else None
            format_name = container.format.name
            width = height = packets = 0
            audio_sizes = _AudioPackets()
            first = last = None
            for packet in container.demux(*[s for s in (stream, audio_stream) if s is not None]):
                if cpu_seconds is not None and time.thread_time() - started > cpu_seconds:
                    raise TooComplex("it is too complex to inspect within the upload's CPU budget (PROBE_CPU_SECONDS)")
                if packet.stream is audio_stream:
                    audio_sizes.add(packet)
                    continue
                if not width:  # decoding one frame catches files whose header parses but whose data does not
                    for frame in packet.decode():  # the final, empty packet flushes the decoder
                        width, height = display_size(frame)
                if packet.pts is None or packet.time_base is None:
                    continue
                packets += 1
                if max_packets is not None and packets > max_packets:
                    raise TooComplex(f"it has more than {max_packets} frames, more than any allowed video can have")
                start = packet.pts * packet.time_base
                end = start + (packet.duration or 0) * packet.time_base
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
                if stop_after_seconds is not None and last - first > stop_after_seconds:
                    break
    except ProbeError:
        raise
    except (av.FFmpegError, StopIteration, ValueError, OSError, TypeError, ZeroDivisionError, AttributeError) as exc:
        raise ProbeError("it is not an MP4 or MOV video the encoder can read") from exc
    if not width:
        raise ProbeError("no video frame could be decoded")
    duration = float(last - first) if first is not None else 0.0
    if duration <= 0:
        raise ProbeError("its duration is zero")
    channels = audio.channels if audio else 0
    return ProbeResult(
        duration=duration,
        width=width,
        height=height,
        has_audio=audio is not None,
        format_name=format_name,
        fps=packets / duration,
        audio_codec=(audio.name or "") if audio else "",
        audio_profile=(audio.profile or "") if audio else "",
        audio_channels=channels,
        audio_sample_rate=audio.sample_rate or 0 if audio else 0,
        audio_bounded=audio_sizes.within_aac_limits(channels, duration),
    )


class _AudioPackets:
    """The audio packets the probe walks past: whether the stream keeps to what AAC can carry (each packet at
    most 6144 bits a channel, the whole at most AUDIO_BOUND_BIT_RATE, at most AUDIO_FRAMES_PER_SECOND), so
    that copying it as it is keeps each output within its bound."""

    def __init__(self):
        self.count = self.total = self.largest = 0

    def add(self, packet) -> None:
        if not packet.size:
            return  # the flush at the end
        self.count += 1
        self.total += packet.size
        self.largest = max(self.largest, packet.size)

    def within_aac_limits(self, channels: int, seconds: float) -> bool:
        if not self.count or not 1 <= channels <= 2:
            return False
        length = seconds + 1
        return (
            self.largest <= AAC_MAX_FRAME_BYTES_PER_CHANNEL * channels
            and self.total * 8 <= AUDIO_BOUND_BIT_RATE * length
            and self.count <= AUDIO_FRAMES_PER_SECOND * length
        )


def display_size(frame) -> tuple[int, int]:
    """A decoded frame's size as it is shown: FFmpeg turns a frame the file says to show rotated by 90° (a
    phone held upright) before any filter, so the placements and the rows work in that size."""
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return (frame.height, frame.width) if quarter_turns % 2 else (frame.width, frame.height)


def output_seconds(path: Path) -> float:
    """How long an output that FFmpeg just wrote runs (its longest stream), from its index alone."""
    with av.open(str(path), format="mov") as container:
        return round(container.duration / av.time_base, 3) if container.duration else 0.0
