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
