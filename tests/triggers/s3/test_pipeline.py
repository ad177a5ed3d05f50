"""The S3 job's read-ahead and write-behind threads: order kept, failures raised in the job, nothing left running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from handler.triggers.s3.pipeline import WriteBehind, prefetched


def test_read_ahead_keeps_the_order_and_the_end() -> None:
    assert list(prefetched(iter(range(50)))) == list(range(50))
    assert list(prefetched(iter([]))) == []


def test_a_reader_failure_is_raised_to_the_job_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionResetError("S3 went away")

    got = []
    with pytest.raises(ConnectionResetError, match="S3 went away"):
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2]


def test_a_job_that_stops_early_closes_the_reader_on_its_thread() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()  # the reader's own `finally`: where the S3 stream is closed

    reader = prefetched(items())
    assert next(reader) == 0
    reader.close()
    assert closed.wait(5), "the reader was left open"
    assert not any(t.name == "s3-read-ahead" for t in threading.enumerate())


def test_writes_behind_happen_in_order_and_are_all_done_on_leaving() -> None:
    done: list[int] = []

    def write(i: int) -> None:
        time.sleep(0.001 * (i % 3))
        done.append(i)

    with WriteBehind() as behind:
        for i in range(20):
            behind.submit(write, i)
    assert done == list(range(20))


def test_a_failed_write_is_raised_by_the_job_and_later_writes_wait_for_it() -> None:
    def write(i: int) -> None:
        if i == 3:
            raise PermissionError("AccessDenied on UploadPart")

    with pytest.raises(PermissionError, match="AccessDenied"), WriteBehind(depth=1) as behind:
        for i in range(10):
            behind.submit(write, i)
