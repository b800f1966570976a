"""Placements through the real service against the reference loop: 5 variations x 3 formats of one clip.

The reference is one FFmpeg command per output, one after another (15 for 5 variations x 3 formats): the
reference command with a centred `crop` to the format's ratio and a `scale` to its size in front of its
filter chain. The service runs the same job as `make run` starts it: crop, then blur, then strong (crop).
Also measured, on the job's own encoding commands run alone (service paused): what the SSIM measure adds to
a batch (the same batches with and without it), and what focus=auto costs (its measure on the clip, against
the job's time).

Prints its figures and writes them to bench/results.json (key "formats"); asserts nothing.

Run: .venv/bin/python bench/formats.py [--runs 3] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from bench.throughput import REFERENCE_ARGS, make_source, reference_chain  # noqa: E402
from jobs import ffmpeg  # noqa: E402
from jobs.ffmpeg.effects import Effects  # noqa: E402
from jobs.ffmpeg.focus import find_focus  # noqa: E402
from jobs.ffmpeg.placement import frame_size, placement_filter  # noqa: E402

FORMATS = ("9:16", "1:1", "4:5")
CASES = {  # label -> the job's form fields
    "crop": {"formats": ",".join(FORMATS), "fit": "crop"},
    "blur": {"formats": ",".join(FORMATS), "fit": "blur"},
    "strong": {"formats": ",".join(FORMATS), "fit": "crop", "strength": "strong"},
}


def reference_loop(source: Path, width: int, height: int, variations: int, folder: Path) -> float:
    """15 sequential reference commands: centred crop and scale to each format, then the reference chain."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for format_ in FORMATS:
        crop = placement_filter(format_, "crop", width, height).removesuffix(",setsar=1")
        out_w, out_h = frame_size(format_, "crop", width, height)
        if f"scale={out_w}:{out_h}" not in crop:
            crop += f",scale={out_w}:{out_h}"
        for index in range(variations):
            effects = Effects(rotation=0.001 + 0.002 * index, brightness=0.01, contrast=1.01, saturation=0.99)
            cmd = [ffmpeg.ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(source)]
            chain = f"{crop},{reference_chain(effects)}"
            out = folder / f"reference-{format_.replace(':', 'x')}-{index}.mp4"
            subprocess.run([*cmd, "-vf", chain, *REFERENCE_ARGS, str(out)], check=True)
    return time.monotonic() - started


def batch_seconds(source: Path, job: dict, folder: Path, batch_size: int, with_ssim: bool) -> float:
    """The job's batches (BATCH_SIZE outputs each, as the worker splits them), alone, with or without SSIM."""
    row = job["sources"][0]
    probe = ffmpeg.probe(source)
    outputs = sorted(row["outputs"], key=lambda o: (o["variation_index"], o["format"]))
    specs = []
    for number, output in enumerate(outputs):
        effects = Effects.from_dict(output["effects"])
        specs.append(
            ffmpeg.OutputSpec(
                folder / f"bare-{number}.mp4",
                effects.filter_chain(),
                placement=placement_filter(output["format"], job["fit"], probe.width, probe.height),
                speed=effects.speed,
                ssim_path=folder / f"bare-{number}.ssim" if with_ssim else None,
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for start in range(0, len(specs), batch_size):
        ffmpeg.encode(source, specs[start : start + batch_size], job_id="bench")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny clip, one run: checks that the bench works")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-formats-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    size, seconds, variations = ("320x240", 1.0, 2) if args.smoke else ("1920x1080", 10.0, 5)
    runs = 1 if args.smoke else args.runs
    width, height = (int(part) for part in size.split("x"))
    source = make_source(folder / f"clip-{size}.mp4", size, seconds)
    batch_size = 5
    service = Service(folder / "service", workers=1, batch_size=batch_size)
    figures: dict = {"clip": f"{size}, {seconds:g} s", "variations": variations, "formats": list(FORMATS)}
    try:
        service.run_job([make_source(folder / "warm-up.mp4", "320x240", 1.0)], 1)
        reference = statistics.median(
            reference_loop(source, width, height, variations, folder / "reference") for _ in range(runs)
        )
        figures["reference_loop_seconds"] = round(reference, 2)
        last_job = None
        for label, fields in CASES.items():
            times = []
            for _ in range(runs):
                took, last_job, _archive = service.run_job([source], variations, **fields)
                times.append(took)
            median = statistics.median(times)
            figures[label] = {"service_seconds": round(median, 2), "ratio": round(median / reference, 3)}
            ssims = [o["ssim"] for o in last_job["sources"][0]["outputs"]]
            figures[label]["ssim"] = [round(min(ssims), 3), round(max(ssims), 3)]
            print(f"{label}: service {median:.2f} s, reference loop {reference:.2f} s, ratio {median / reference:.2f}; "
                  f"SSIM to the original {min(ssims):.3f}-{max(ssims):.3f}", flush=True)  # fmt: skip
        crop_job = service.run_job([source], variations, **CASES["crop"])[1]
        with service.paused():
            plain = statistics.median(
                batch_seconds(source, crop_job, folder / "bare", batch_size, False) for _ in range(runs)
            )
            measured = statistics.median(
                batch_seconds(source, crop_job, folder / "bare", batch_size, True) for _ in range(runs)
            )
            started = time.monotonic()
            find_focus(source, 3840 * 2160)  # the first in a worker process also loads the face detector
            focus_first = time.monotonic() - started
            started = time.monotonic()
            find_focus(source, 3840 * 2160)
            focus = time.monotonic() - started
    finally:
        service.stop()
    figures["ssim_cost"] = round(measured / plain - 1, 3)
    figures["focus_auto_seconds"] = round(focus, 3)
    figures["focus_auto_first_in_a_process_seconds"] = round(focus_first, 3)
    figures["focus_auto_of_crop_job"] = round(focus / figures["crop"]["service_seconds"], 4)
    print(f"SSIM measure: {plain:.2f} s -> {measured:.2f} s of batches ({100 * figures['ssim_cost']:+.1f} %); "
          f"focus=auto: {focus:.3f} s ({100 * figures['focus_auto_of_crop_job']:.2f} % of the crop job; "
          f"{focus_first:.3f} s the first time in a process)")  # fmt: skip
    record("formats", figures, args.results)
    print(f"written to {args.results}")


if __name__ == "__main__":
    main()
