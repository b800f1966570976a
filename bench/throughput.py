"""Throughput through the real service against the reference loop, side by side, with sizes and quality.

The service runs as `make run` starts it (gunicorn + `manage.py runworker`) on a fresh data folder;
a job goes in over HTTP with a token and is timed until its ZIP is downloaded. The reference loop is
one FFmpeg process per variation, one after another, with the reference arguments. A small job
warms the service up first (imports, first connections), untimed. Then each run times the reference
loop, the job through the service, and the bare encoding commands that job ran, timed alone right
after it (every process of the service stopped meanwhile), for the orchestration overhead; each figure
is the median of `--runs`, the overhead the median of the runs' own. Then every variation of the last
service run is measured: SSIM against its source and against the reference render of the same
parameters (at the source's frame rate, see reference_loop), size against the median size of the
reference loop's outputs for the same clip, and whether all outputs are byte-distinct.

Prints its figures and writes them to bench/results.json (key "throughput"); asserts nothing.

Run: .venv/bin/python bench/throughput.py [--runs 3] [--variations 5] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="videojobs-bench-"))

import django  # noqa: E402

django.setup()

from bench.results import RESULTS, record  # noqa: E402
from bench.service import Service  # noqa: E402
from jobs import ffmpeg  # noqa: E402
from jobs.ffmpeg.effects import Effects  # noqa: E402
from jobs.worker.outputs import thumbnail_moment  # noqa: E402

REFERENCE_ARGS = (
    "-r 29.97 -b:v 2000k -bufsize 4000k -maxrate 2500k -preset ultrafast -crf 23 -threads 4 "
    "-pix_fmt yuv420p -movflags +faststart -map_metadata -1 -y"
).split()


def make_source(path: Path, size: str, seconds: float, rate: int = 30) -> Path:
    """testsrc2 with stereo AAC audio, encoded as a camera or an editor would hand it over."""
    cmd = [ffmpeg.ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    cmd += ["-filter_complex", "[1:a]aformat=channel_layouts=stereo[a]", "-map", "0:v", "-map", "[a]"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def reference_chain(effects: Effects) -> str:
    return (
        f"rotate={effects.rotation}:fillcolor=black@0,"
        f"eq=brightness={effects.brightness}:contrast={effects.contrast}:saturation={effects.saturation}"
    )


def reference_loop(
    source: Path, effects: list[Effects], folder: Path, keep_frame_rate: bool = False
) -> tuple[float, list[Path]]:
    """The reference: one FFmpeg per variation, one after another. `keep_frame_rate` leaves out its
    `-r 29.97`, for the quality renders: SSIM pairs frames one to one only at the source's own rate (with
    it, a render drifts a frame against its own source and measures 0.95 where it is otherwise 0.99)."""
    args = REFERENCE_ARGS[2:] if keep_frame_rate else REFERENCE_ARGS
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    started = time.monotonic()
    for index, one in enumerate(effects):
        out = folder / f"reference-{source.stem}-{index}.mp4"
        cmd = [ffmpeg.ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i", str(source)]
        subprocess.run([*cmd, "-vf", reference_chain(one), *args, str(out)], check=True)
        outputs.append(out)
    return time.monotonic() - started, outputs


def ssim(first: Path, second: Path) -> float:
    run = subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-hide_banner", "-i", str(first), "-i", str(second)]
        + ["-filter_complex", "[0:v][1:v]ssim", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stderr.rsplit("All:", 1)[1].split()[0])


def bare_encode_seconds(sources: list[Path], job: dict, folder: Path, batch_size: int, workers: int = 1) -> float:
    """The encoding commands the service ran for this job, alone: each video's batches one after another,
    and up to `workers` videos side by side, as the service's workers share a job's videos. With the same
    outputs: each variation's thumbnail, and the job's thumbnail in the first video's first batch."""

    def encode_video(position: int) -> None:
        source, row = sources[position], job["sources"][position]
        probe = ffmpeg.probe(source)
        encoding = ffmpeg.EncodeSettings.for_source(
            probe.audio_codec, probe.audio_profile, probe.audio_channels, probe.audio_sample_rate
        )
        moment = thumbnail_moment(SimpleNamespace(duration=probe.duration))
        outputs = sorted(row["outputs"], key=lambda output: output["variation_index"])
        for start in range(0, len(outputs), batch_size):
            specs = [
                ffmpeg.OutputSpec(
                    folder / f"bare-{position}-{index}.mp4",
                    Effects.from_dict(output["effects"]).filter_chain(),
                    thumbnail=ffmpeg.ThumbnailSpec(folder / f"bare-{position}-{index}.webp", at_seconds=moment),
                    ssim_path=folder / f"bare-{position}-{index}.ssim",  # the service measures every output
                )
                for index, output in enumerate(outputs[start : start + batch_size], start)
            ]
            first = position == 0 and start == 0
            job_thumbnail = ffmpeg.ThumbnailSpec(folder / "bare-thumbnail.webp", at_seconds=moment) if first else None
            ffmpeg.encode(source, specs, job_id="bench", encoding=encoding, thumbnail=job_thumbnail)

    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(encode_video, range(len(sources))))
    return time.monotonic() - started


def quality(archive: bytes, sources: dict[str, Path], reference_sizes: dict[str, float], folder: Path) -> dict:
    """Per variation: SSIM against its source and against the reference render of its parameters; size
    against the median size of the reference loop's outputs for the same clip."""
    unpacked = folder / "unpacked"
    zipped = zipfile.ZipFile(io.BytesIO(archive))
    zipped.extractall(unpacked)
    manifest = json.loads(zipped.read("manifest.json"))
    rows = []
    for entry in manifest["outputs"]:
        output = unpacked / entry["file"]
        source = sources[entry["source"]]
        render = folder / "reference-render"
        _, (reference,) = reference_loop(source, [Effects.from_dict(entry["effects"])], render, keep_frame_rate=True)
        rows.append(
            {
                "file": entry["file"],
                "ssim_vs_source": ssim(output, source),
                "ssim_vs_reference_render": ssim(output, reference),
                "size": output.stat().st_size,
                "reference_size": reference_sizes[entry["source"]],
            }
        )
    distinct = len({(unpacked / entry["file"]).read_bytes() for entry in manifest["outputs"]})
    return {
        "variations": rows,
        "ssim_vs_source": [min(r["ssim_vs_source"] for r in rows), max(r["ssim_vs_source"] for r in rows)],
        "ssim_vs_reference_render_min": min(r["ssim_vs_reference_render"] for r in rows),
        "size_vs_reference_max": max(r["size"] / r["reference_size"] for r in rows),
        "byte_distinct": distinct == len(rows),
    }


def compare(label, sources, variations, runs, workers, batch_size, folder) -> dict:
    service = Service(folder / f"service-{label}", workers=workers, batch_size=batch_size)
    try:
        service.run_job([make_source(folder / f"warm-up-{label}.mp4", "320x240", 1.0)], 1)
        reference_times, service_times, bare_times = [], [], []
        reference_sizes: dict[str, list[int]] = {}
        for _ in range(runs):
            total = 0.0
            for source in sources:
                # The reference gets the same kind of parameters; their exact values do not change its speed.
                effects_of_reference = [
                    Effects(rotation=0.001 + 0.002 * i, brightness=0.01, contrast=1.01, saturation=0.99)
                    for i in range(variations)
                ]
                seconds, outputs = reference_loop(source, effects_of_reference, folder / "reference")
                reference_sizes.setdefault(source.name, []).extend(out.stat().st_size for out in outputs)
                total += seconds
            reference_times.append(total)
            seconds, job, archive = service.run_job(sources, variations)
            service_times.append(seconds)
            with service.paused():
                bare_times.append(bare_encode_seconds(sources, job, folder / "bare", batch_size, workers))
    finally:
        service.stop()
    reference, through_service = statistics.median(reference_times), statistics.median(service_times)
    bare = statistics.median(bare_times)
    overhead = statistics.median(s / b - 1 for s, b in zip(service_times, bare_times, strict=True))
    figures = {
        "clips": [source.name for source in sources],
        "variations_per_video": variations,
        "workers": workers,
        "batch_size": batch_size,
        "runs": runs,
        "reference_loop_seconds": round(reference, 2),
        "service_seconds": round(through_service, 2),
        "ratio": round(through_service / reference, 3),
        "bare_encode_seconds": round(bare, 2),
        "overhead": round(overhead, 3),
        "service_seconds_each_run": [round(s, 2) for s in service_times],
        "bare_encode_seconds_each_run": [round(s, 2) for s in bare_times],
        "quality": quality(
            archive,
            {source.name: source for source in sources},
            {name: statistics.median(sizes) for name, sizes in reference_sizes.items()},
            folder / f"quality-{label}",
        ),
    }
    q = figures["quality"]
    print(
        f"{label}: service {through_service:.2f} s, reference loop {reference:.2f} s, ratio {figures['ratio']:.2f}; "
        f"bare encode {bare:.2f} s, overhead {100 * figures['overhead']:+.1f} %; "
        f"SSIM vs source {q['ssim_vs_source'][0]:.3f}-{q['ssim_vs_source'][1]:.3f}, "
        f"vs reference render >= {q['ssim_vs_reference_render_min']:.3f}; "
        f"size <= {q['size_vs_reference_max']:.2f}x the reference's; byte-distinct: {q['byte_distinct']}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variations", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: checks that the bench works")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="videojobs-bench-throughput-"))
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    if args.smoke:
        clips = {"720p": make_source(folder / "small.mp4", "320x240", 1.0)}
        args.runs, args.variations = 1, 2
    else:
        clips = {
            "720p": make_source(folder / "landscape-720p.mp4", "1280x720", 10.0),
            "1080x1920": make_source(folder / "vertical-1080x1920.mp4", "1080x1920", 10.0),
        }
    figures = {}
    for label, clip in clips.items():
        figures[label] = compare(label, [clip], args.variations, args.runs, 1, 5, folder)
    if not args.smoke:
        both = list(clips.values())
        figures["2 videos, WORKERS=2"] = compare("2 videos, WORKERS=2", both, args.variations, args.runs, 2, 5, folder)
    record("throughput", {"machine": machine(), **figures}, args.results)
    print(f"written to {args.results}")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": sys.platform, "ffmpeg": ffmpeg_version()}


def ffmpeg_version() -> str:
    run = subprocess.run([ffmpeg.ffmpeg_binary(), "-version"], capture_output=True, text=True, check=True)
    return run.stdout.split("\n", 1)[0]


if __name__ == "__main__":
    main()
