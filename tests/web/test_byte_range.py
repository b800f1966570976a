"""One byte range of a file: what a Range header asks of a file of a given size."""

from __future__ import annotations

import pytest

from jobs.web.byte_range import Unsatisfiable, requested


@pytest.mark.parametrize(
    "header, wanted",
    [
        ("bytes=0-9", (0, 9)),
        ("bytes=0-0", (0, 0)),  # one byte
        ("bytes=90-200", (90, 99)),  # the end is clipped to the file
        ("bytes=5-", (5, 99)),
        ("bytes=99-", (99, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),  # a suffix longer than the file: all of it
        (" bytes = 3 - 4 ", (3, 4)),
        ("BYTES=0-1", (0, 1)),  # units are case-insensitive
        ("bytes=0-" + "9" * 18, (0, 99)),
    ],
)
def test_one_range_of_each_form(header, wanted):
    assert requested(header, 100) == wanted


@pytest.mark.parametrize(
    "header",
    [None, "", "items=0-5", "bytes=5-2", "bytes=0-1,5-6", "bytes=-", "bytes=a-b", "bytes=--5", "bytes=0x1-2", "5-6",
     "bytes=0-" + "9" * 5000, "bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 19],  # no int() of 5000 digits
)  # fmt: skip
def test_headers_it_does_not_serve_get_the_whole_file(header):
    assert requested(header, 100) is None


@pytest.mark.parametrize(
    "header, size", [("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_a_range_past_the_end_is_unsatisfiable(header, size):
    with pytest.raises(Unsatisfiable) as raised:
        requested(header, size)
    assert raised.value.size == size
