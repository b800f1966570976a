"""Every benchmark runs on tiny inputs, so that none of them can rot. Figures are printed, not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.workers import ROOT

pytestmark = pytest.mark.slow


def _run(tmp_path, *args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    clean.update(DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING", **env)
    run = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run.stdout


def test_throughput_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/throughput.py", "--smoke", "--results", str(results))
    assert "ratio" in out and "SSIM vs source" in out
    figures = json.loads(results.read_text())["throughput"]["figures"]["720p"]
    assert figures["quality"]["byte_distinct"] is True and len(figures["quality"]["variations"]) == 2


def test_encode_bench_smoke(tmp_path):
    out = _run(tmp_path, "bench/encode.py", "--smoke")
    assert "batch speed-up" in out and "-threads auto" in out and "-threads 2" in out


def test_warp_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/warp.py", "--smoke", "--results", str(results))
    figures = json.loads(results.read_text())["warp"]["figures"]
    assert "perspective (the service)" in out and figures["OpenCV warpAffine (not built)"] > 0


def test_warp_pipeline_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/warp_pipeline.py", "--smoke", "--results", str(results))
    figures = json.loads(results.read_text())["warp_pipeline"]["figures"]
    assert "OpenCV pipeline" in out and figures["OpenCV pipeline (warp only)"] > 0


def test_cancel_bench_smoke(tmp_path):
    out = _run(tmp_path, "bench/cancel.py", "1", KILL_GRACE_SECONDS="0.5")
    assert "normal (real FFmpeg, q)" in out and "ignores SIGTERM" in out


def test_cleanup_bench_smoke(tmp_path):
    assert "10 expired jobs" in _run(tmp_path, "bench/cleanup.py", "10")


def test_polling_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/polling.py", "--smoke", "--results", str(results))
    figures = json.loads(results.read_text())["polling"]["figures"]
    assert "about every 1 s" in out and "back to back" in out and "a missing job" in out
    rounds = (figures, figures["back_to_back"], figures["floor"])
    assert all(round["errors"] == 0 and round["requests_per_second"] > 0 for round in rounds)


def test_status_answer_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/status_answer.py", "--smoke", "--results", str(results))
    figures = json.loads(results.read_text())["status_answer"]["figures"]
    assert "function calls" in out and figures["2x5"]["function_calls"] < figures["10x20"]["function_calls"]


def test_download_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/download.py", "--smoke", "--results", str(results))
    assert "against cat's" in out and json.loads(results.read_text())["download"]["figures"]["content_length_exact"]


def test_cancel_through_the_service_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/cancel_service.py", "--smoke", "--results", str(results))
    assert "to FFmpeg's exit" in out and json.loads(results.read_text())["cancel_service"]["figures"]["runs"] == 1


def test_grid_bench_smoke(tmp_path):
    results, picture = tmp_path / "results.json", tmp_path / "grid.png"
    out = _run(tmp_path, "bench/grid.py", "--smoke", "--results", str(results), "--plot", str(picture))
    assert "WORKERS=1 BATCH_SIZE=2" in out
    cells = json.loads(results.read_text())["grid"]["figures"]["cells"]
    assert [(c["workers"], c["batch_size"]) for c in cells] == [(1, 1), (1, 2)]
    assert all(c["variations_per_minute"] > 0 for c in cells)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_bench_smoke(tmp_path):
    out = _run(tmp_path, "bench/hostile.py", "--smoke")
    assert out.count("413 Request Entity Too Large") == 4 and "0 spooled" in out
    assert "probe" in out and "FFmpeg peak RSS" in out and "reserved" in out


def test_formats_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/formats.py", "--smoke", "--results", str(results))
    assert "crop: service" in out and "blur: service" in out and "strong: service" in out and "SSIM measure" in out
    figures = json.loads(results.read_text())["formats"]["figures"]
    assert {"crop", "blur", "strong", "ssim_cost", "focus_auto_seconds"} <= set(figures)


def test_events_bench_smoke(tmp_path):
    results = tmp_path / "results.json"
    out = _run(tmp_path, "bench/events.py", "--smoke", "--results", str(results))
    figures = json.loads(results.read_text())["events"]["figures"]
    assert "streams" in out and figures["changes_timed"] > 0 and figures["changes_missed"] == 0
    assert figures["poll_errors"] == 0 and figures["cpu_ms_per_304"] > 0
