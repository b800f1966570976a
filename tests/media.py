"""Tiny test clips generated with the bundled FFmpeg (lavfi testsrc2 + sine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av

from jobs.ffmpeg import ffmpeg_binary


def make_clip(path: Path, seconds: float = 1.0, size: str = "320x240", audio: bool = True, rate: int = 25) -> Path:
    cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac"]
    cmd += ["-shortest", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


def make_size_switching_clip(
    path: Path, first: str = "160x120", then: str = "640x480", seconds: float = 1.0, then_seconds: float | None = None
) -> Path:
    """An H.264 MP4 that is `first` for `seconds`, then `then` for `then_seconds` (as long by default; a new SPS
    in the stream): its header and its first frame say `first`. Built from two Annex B streams put end to end."""
    parts = []
    for index, (size, length) in enumerate(
        ((first, seconds), (then, seconds if then_seconds is None else then_seconds))
    ):
        part = path.with_name(f"{path.stem}-{index}.h264")
        cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={length}"]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "h264", str(part)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        parts.append(part)
    joined = path.with_suffix(".h264")
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-r", "25", "-i", str(joined)]
    subprocess.run([*cmd, "-c", "copy", str(path)], check=True, capture_output=True, timeout=120)
    for leftover in (*parts, joined):
        leftover.unlink()
    return path


def with_one_fat_audio_packet(source: Path, path: Path, packet_bytes: int) -> Path:
    """A copy of `source` (video and AAC audio) whose first audio packet is `packet_bytes` of zeros: its header
    still says AAC LC, but no AAC encoder ever writes such a packet."""
    with av.open(str(source)) as read, av.open(str(path), "w", format="mp4") as write:
        video_in, audio_in = read.streams.video[0], read.streams.audio[0]
        video_out = write.add_stream_from_template(video_in)
        audio_out = write.add_stream_from_template(audio_in)
        fattened = False
        for packet in read.demux(video_in, audio_in):
            if packet.dts is None:
                continue
            is_audio = packet.stream is audio_in
            if is_audio and not fattened:
                fat = av.Packet(b"\0" * packet_bytes)
                fat.pts, fat.dts, fat.time_base, fat.duration = (
                    packet.pts,
                    packet.dts,
                    packet.time_base,
                    packet.duration,
                )
                packet, fattened = fat, True
            packet.stream = audio_out if is_audio else video_out
            write.mux(packet)
    return path


def without_first_packets(source: Path, path: Path, count: int) -> Path:
    """A copy of `source`'s video with its first `count` packets left out and its header kept: the header of
    a size-switching clip then says one size while the first frame is of the other."""
    with av.open(str(source)) as read, av.open(str(path), "w", format="mp4") as write:
        video_in = read.streams.video[0]
        video_out = write.add_stream_from_template(video_in)
        shift = None
        for index, packet in enumerate(read.demux(video_in)):
            if packet.dts is None or index < count:
                continue
            shift = packet.dts if shift is None else shift
            packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = video_out
            write.mux(packet)
    return path


def make_edge_subject_clip(path: Path, seconds: float = 2.0) -> Path:
    """A 640x360 plain grey clip with a small moving test pattern near its right edge: a 9:16 crop centred on
    the frame misses it."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"color=c=gray:size=640x360:rate=25:duration={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size=100x100:rate=25:duration={seconds}"]
    cmd += ["-filter_complex", "[0:v][1:v]overlay=x='520+10*sin(t*3)':y=130"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path
