#!/usr/bin/env python3
"""FFmpeg reading its input at the clip's own pace (-re), for worker clusters started by tests
(FFMPEG_BINARY points here; tests.workers.PACED_FFMPEG): a batch of a 3 s clip lasts about 3 s, long enough
to be looked at, cancelled or killed, while FFmpeg waits on the clock instead of taking a core.

It becomes the real FFmpeg (exec: the same process, its tags, limits and death signal), named by
VIDEOJOBS_REAL_FFMPEG.
"""

import os
import sys

args = sys.argv[1:]
if "-i" in args:
    args.insert(args.index("-i"), "-re")
real = os.environ["VIDEOJOBS_REAL_FFMPEG"]
os.execv(real, [real, *args])
