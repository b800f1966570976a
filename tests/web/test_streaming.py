"""AsyncChunks: a download's chunks on the event loop while reads are quick, in a thread once one is slow."""

from __future__ import annotations

import threading
import time

from asgiref.sync import async_to_sync

from jobs.web import streaming


def _collect(chunks) -> list[bytes]:
    async def run():
        return [chunk async for chunk in streaming.AsyncChunks(chunks)]

    return async_to_sync(run)()


def test_quick_reads_stay_on_the_loop_and_a_slow_one_sends_the_next_ones_to_a_thread():
    where: list[str] = []

    def chunks():
        for number in range(40):
            where.append("loop" if threading.current_thread() is loop_thread[0] else "thread")
            if number == 3:
                time.sleep(streaming.SLOW_READ_SECONDS * 5)  # the disk, for once
            yield bytes([number])

    loop_thread: list = [None]

    async def run():
        loop_thread[0] = threading.current_thread()
        return [chunk async for chunk in streaming.AsyncChunks(chunks())]

    assert async_to_sync(run)() == [bytes([number]) for number in range(40)]
    assert where[:4] == ["loop"] * 4
    assert where[4 : 4 + streaming.THREAD_READS] == ["thread"] * streaming.THREAD_READS
    assert where[4 + streaming.THREAD_READS] == "loop"  # then it tries the loop again


def test_close_runs_what_it_was_given():
    closed = []
    streaming.AsyncChunks([b"a"], close=lambda: closed.append(True)).close()
    assert closed == [True] and _collect(iter([b"x", b"y"])) == [b"x", b"y"]


def test_a_download_whose_reading_fails_is_closed_all_the_same():
    closed = []

    def chunks():
        yield b"a"
        raise OSError("the disk went")

    async def run():
        async for _ in streaming.AsyncChunks(chunks(), close=lambda: closed.append(True)):
            pass

    try:
        async_to_sync(run)()
    except OSError:
        pass
    assert closed == [True]
