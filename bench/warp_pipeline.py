"""A measured answer to "would an OpenCV warp outside FFmpeg reach 0.35 of the reference loop?": a prototype
of that pipeline, not the product's path. One FFmpeg decodes the clip to raw frames; this process rotates
each frame once per variation with OpenCV's warpAffine (bilinear, edges repeated), and writes it to one x264
encoder per variation (ultrafast, crf 23, one thread each, as the service's batch). Timed against the
service's own batch command for the same 5 variations (one FFmpeg, `perspective` + `eq`), alternated.

No colour (`eq`), audio, SSIM or thumbnails here: the prototype's figure is a lower bound of what the
pipeline would cost in the service.

Run: .venv/bin/python bench/warp_pipeline.py [--smoke]  (prints its figures; no asserts)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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
from jobs import ffmpeg  # noqa: E402
from jobs.ffmpeg.effects import effects_for  # noqa: E402
from tests.media import make_clip  # noqa: E402


def _encoder(path: Path, width: int, height: int, fps: int) -> subprocess.Popen:
    cmd = [ffmpeg.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo"]
    cmd += ["-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-threads", "1", str(path)]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE)


def pipeline(source: Path, angles: list[float], width: int, height: int, fps: int, folder: Path) -> float:
    """Wall time of decode -> 5 warps -> 5 encoders for the whole clip."""
    started = time.monotonic()
    decode = [ffmpeg.ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1"]
    decode += ["-i", str(source)]
    decode += ["-an", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"]
    decoder = subprocess.Popen(decode, stdout=subprocess.PIPE)  # buffered: read(n) returns whole frames
    encoders = [_encoder(folder / f"warp-{i}.mp4", width, height, fps) for i in range(len(angles))]
    planes = [(height, width), (height // 2, width // 2), (height // 2, width // 2)]
    matrices = [
        [cv2.getRotationMatrix2D((w / 2, h / 2), np.degrees(angle), 1.0) for h, w in planes] for angle in angles
    ]
    frame_bytes = width * height * 3 // 2
    cv2.setNumThreads(1)

    def warp_and_write(index: int, frame: bytes) -> None:
        data = np.frombuffer(frame, np.uint8)
        out, offset = [], 0
        for (h, w), matrix in zip(planes, matrices[index], strict=True):
            plane = data[offset : offset + h * w].reshape(h, w)
            offset += h * w
            out.append(cv2.warpAffine(plane, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        encoders[index].stdin.write(b"".join(p.tobytes() for p in out))

    while True:
        frame = decoder.stdout.read(frame_bytes)
        if len(frame) < frame_bytes:
            break
        workers = [threading.Thread(target=warp_and_write, args=(i, frame)) for i in range(len(angles))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    decoder.wait()
    for encoder in encoders:
        encoder.stdin.close()
        encoder.wait()
    return time.monotonic() - started


def service_batch(source: Path, count: int, folder: Path) -> float:
    specs = [ffmpeg.OutputSpec(folder / f"b{i}.mp4", effects_for(1, 0, i).filter_chain()) for i in range(count)]
    started = time.monotonic()
    ffmpeg.encode(source, specs, job_id="bench", encoding=ffmpeg.EncodeSettings())
    return time.monotonic() - started


def main(runs: int, seconds: float, size: str, fps: int, results: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-"))
    source = make_clip(folder / "clip.mp4", seconds=seconds, size=size, audio=False, rate=fps)
    width, height = (int(n) for n in size.split("x"))
    angles = [effects_for(1, 0, i).rotation for i in range(5)]
    timed: dict[str, list[float]] = {"service batch (perspective + eq)": [], "OpenCV pipeline (warp only)": []}
    for _ in range(runs):
        timed["service batch (perspective + eq)"].append(service_batch(source, len(angles), folder))
        timed["OpenCV pipeline (warp only)"].append(pipeline(source, angles, width, height, fps, folder))
    print(f"5 variations of a {seconds:g} s {size} clip at {fps} fps, median of {runs}:")
    figures = {"clip": f"{size}, {seconds:g} s, {fps} fps"}
    for name, values in timed.items():
        figures[name] = round(statistics.median(values), 2)
        print(f"  {name:36} {figures[name]:6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
    record("warp_pipeline", figures, results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny clip, once: checks that the bench works")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        main(1, 1.0, "320x240", 25, args.results)
    else:
        main(args.runs, 10.0, "1280x720", 30, args.results)
