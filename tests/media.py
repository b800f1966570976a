"""Tiny test clips generated with the bundled FFmpeg (lavfi testsrc2 + sine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


def make_size_switching_clip(path: Path, first: str = "160x120", then: str = "640x480", seconds: float = 1.0) -> Path:
    """An H.264 MP4 that is `first` for `seconds`, then `then` for as long (a new SPS in the stream): its
    header and its first frame say `first`. Built from two Annex B streams put end to end."""
    parts = []
    for index, size in enumerate((first, then)):
        part = path.with_name(f"{path.stem}-{index}.h264")
        cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}"]
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
