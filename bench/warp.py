"""The rotation's cost per frame, by way of doing it: FFmpeg's `perspective` (what the service uses),
`rotate` (the reference command's), `v360` and `shear`, and OpenCV's `warpAffine` on decoded planes (a way
out of FFmpeg's filters that the placements round measured and did not build), against the encoder's cost.

Each FFmpeg figure is the CPU time of decoding the clip through the one filter into a null sink, less that
of decoding it alone, single-threaded (`-threads 1 -filter_threads 1`), per frame. OpenCV's is the median
time of warping one frame's three planes (yuv420p), bilinear, single-threaded.

Run: .venv/bin/python bench/warp.py [--smoke] [--results PATH]  (prints its figures; no asserts)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.results import RESULTS, record  # noqa: E402
from jobs.ffmpeg import ffmpeg_binary  # noqa: E402
from jobs.ffmpeg.effects import rotation_filter  # noqa: E402
from tests.media import make_clip  # noqa: E402

ANGLE = 0.0087  # radians: the middle of the subtle range


NULL_SINK = ["-f", "null", "-"]
X264_SINK = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-threads", "1", "-f", "mp4", "-y", os.devnull]


def cpu_seconds(source: Path, vf: str | None, sink: list[str] = NULL_SINK) -> float:
    """FFmpeg's own user CPU time (-benchmark) for decoding `source` through `vf` into `sink`."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-benchmark", "-threads", "1", "-filter_threads", "1", "-an"]
    cmd += ["-i", str(source), *(["-vf", vf] if vf else []), *sink]
    printed = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return float(re.search(r"utime=([\d.]+)s", printed).group(1))


def opencv_ms(width: int, height: int, repeats: int) -> float:
    """One frame's three planes warped by warpAffine (bilinear, edges repeated), single-threaded."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(1)
    planes = [rng.integers(0, 255, (h, w), np.uint8) for w, h in ((width, height), *[(width // 2, height // 2)] * 2)]
    matrices = [cv2.getRotationMatrix2D((p.shape[1] / 2, p.shape[0] / 2), np.degrees(ANGLE), 1.0) for p in planes]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for plane, matrix in zip(planes, matrices, strict=True):
            size = (plane.shape[1], plane.shape[0])
            cv2.warpAffine(plane, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main(repeats: int = 3, seconds: float = 10, size: str = "1280x720", fps: int = 30, results: Path = RESULTS) -> None:
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-"))
    source = make_clip(folder / "clip.mp4", seconds=seconds, size=size, audio=False, rate=fps)
    width, height = (int(n) for n in size.split("x"))
    frames = int(seconds * fps)
    fov = np.degrees(2 * np.arctan(height / width))
    candidates = {
        "perspective (the service)": rotation_filter(ANGLE),
        "rotate (the reference)": f"rotate={ANGLE}:bilinear=1",
        "v360 flat roll": f"v360=flat:flat:ih_fov=90:iv_fov={fov:.3f}:h_fov=90:v_fov={fov:.3f}"
        f":roll={np.degrees(ANGLE):.4f}:interp=linear",
        "shear (first order)": f"shear=shx={-ANGLE}:shy={ANGLE}:interp=bilinear",
    }
    decode = statistics.median(cpu_seconds(source, None) for _ in range(repeats))
    encode = statistics.median(cpu_seconds(source, None, X264_SINK) for _ in range(repeats)) - decode
    figures = {"clip": f"{size}, {seconds:g} s, {fps} fps", "x264 ultrafast encode": 1000 * encode / frames}
    for name, vf in candidates.items():
        spent = statistics.median(cpu_seconds(source, vf) for _ in range(repeats)) - decode
        figures[name] = 1000 * spent / frames
    figures["OpenCV warpAffine (not built)"] = opencv_ms(width, height, repeats=20 * repeats)
    print(f"CPU ms per frame, {figures['clip']} (median of {repeats}):")
    for name, value in figures.items():
        if name != "clip":
            print(f"  {name:32} {value:6.2f}")
    record("warp", {name: round(v, 2) if isinstance(v, float) else v for name, v in figures.items()}, results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny clip, once: checks that the bench works")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to keep the figures")
    args = parser.parse_args()
    if args.smoke:
        main(repeats=1, seconds=1, size="320x240", results=args.results)
    else:
        main(results=args.results)
