#!/usr/bin/env python3
"""A stand-in for FFmpeg that is hard to stop, for the escalation tests (FFMPEG_BINARY points here).

STANDIN_MODE=ignore-q    never reads stdin, so "q" does nothing; SIGTERM ends it
STANDIN_MODE=ignore-term never reads stdin and ignores SIGTERM; only SIGKILL ends it
STANDIN_MODE=hang        one progress block, then nothing more (a hung decoder); SIGTERM ends it
It writes `-progress`-style blocks like FFmpeg and touches its output files.
"""

import os
import signal
import sys
import time

args = sys.argv[1:]
if os.environ.get("STANDIN_MODE") == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for arg in args:
    if arg.endswith(".part"):
        open(arg, "wb").write(b"partial")
started = time.monotonic()
if os.environ.get("STANDIN_MODE") == "hang":
    sys.stdout.write("out_time_us=40000\nprogress=continue\n")
    sys.stdout.flush()
    time.sleep(120)
while time.monotonic() - started < 120:
    sys.stdout.write(f"out_time_us={int((time.monotonic() - started) * 1e6)}\nprogress=continue\n")
    sys.stdout.flush()
    time.sleep(0.5)
