"""Encode speed: wall time of one variation of a 10 s 720p clip, of a batch of 5, and of that batch with
1, 2 or automatic x264 threads per output.

Run: .venv/bin/python bench/encode.py [--smoke]  (prints its figures; no asserts; --smoke: tiny clips, once)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from jobs import ffmpeg  # noqa: E402
from jobs.ffmpeg.effects import effects_for  # noqa: E402
from tests.media import make_clip  # noqa: E402


def timed(source: Path, outputs: list[ffmpeg.OutputSpec], encoding: ffmpeg.EncodeSettings | None = None) -> float:
    started = time.monotonic()
    ffmpeg.encode(source, outputs, job_id="bench", encoding=encoding or ffmpeg.EncodeSettings())
    return time.monotonic() - started


def main(repeats: int = 3, seconds: float = 10, sizes=(("720p", "1280x720"), ("vertical 1080x1920", "1080x1920"))):
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-"))
    for label, size in sizes:
        source = make_clip(folder / f"src-{size}.mp4", seconds=seconds, size=size)
        one = [
            timed(source, [ffmpeg.OutputSpec(folder / "one.mp4", effects_for(1, 0, 0).filter_chain())])
            for _ in range(repeats)
        ]
        batch = [ffmpeg.OutputSpec(folder / f"b{i}.mp4", effects_for(1, 0, i).filter_chain()) for i in range(5)]
        five = [timed(source, batch) for _ in range(repeats)]
        separate = [sum(timed(source, [spec]) for spec in batch) for _ in range(repeats)]
        threads = {
            count: statistics.median(timed(source, batch, ffmpeg.EncodeSettings(threads=count)) for _ in range(repeats))
            for count in (1, 2, 0)
        }
        print(f"{label}, {seconds:g} s clip:")
        print(f"  one variation:                    {statistics.median(one):6.2f} s wall (median of {repeats})")
        print(f"  5 variations, one batch process:  {statistics.median(five):6.2f} s wall")
        print(f"  5 variations, 5 processes:        {statistics.median(separate):6.2f} s wall")
        print(f"  batch speed-up:                   {statistics.median(separate) / statistics.median(five):6.2f}x")
        for count, seconds in threads.items():
            print(f"  batch of 5, -threads {count or 'auto':<4} per encoder: {seconds:6.2f} s wall")


if __name__ == "__main__":
    if "--smoke" in sys.argv:
        main(repeats=1, seconds=1, sizes=(("smoke", "320x240"),))
    else:
        main()
