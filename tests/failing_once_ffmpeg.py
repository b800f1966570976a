#!/usr/bin/env python3
"""A stand-in for FFmpeg that fails once for one source, then is the real FFmpeg (FFMPEG_BINARY points here).

FAIL_INPUT   the end of the input path to fail for, e.g. "uploads/01.video"
FAIL_MARKER  a file: made on the failure; while it exists, every call runs the real FFmpeg
REAL_FFMPEG  the real FFmpeg
"""

import os
import sys

args = sys.argv[1:]
inputs = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-i"]
marker = os.environ["FAIL_MARKER"]
if any(path.endswith(os.environ["FAIL_INPUT"]) for path in inputs) and not os.path.exists(marker):
    open(marker, "w").close()
    sys.stderr.write(f"{inputs[0]}: Invalid data found when processing input\n")
    sys.exit(1)
os.execv(os.environ["REAL_FFMPEG"], [os.environ["REAL_FFMPEG"], *args])
