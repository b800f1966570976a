"""bench/results.json: the latest figures of each benchmark, under its own key."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def record(key: str, figures: dict, path: Path = RESULTS) -> None:
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = {"command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(), "figures": figures}
    path.write_text(json.dumps(results, indent=2) + "\n")
