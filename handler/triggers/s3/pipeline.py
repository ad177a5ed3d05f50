"""The S3 job's two helper threads: reading ahead of the model, and writing behind it.

One object is read, predicted and written in chunks. Reading and parsing the next chunk
(S3, pyarrow) and formatting and writing the last one's answers (pyarrow kernels, the
multipart upload) mostly release the GIL, so on a thread each they overlap the preprocessing
and the model of the current chunk. Each keeps at most a step or two in hand, so memory stays
a few chunks whatever the file's size, and a failure on any side stops them all and is raised
where the job runs.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class WriteBehind:
    """Writes done in order on one thread, while the caller predicts the next chunk.

    Formatting a chunk's answers (pyarrow kernels) and appending them to the outputs releases the
    GIL for most of its time, so it overlaps the next chunk's preprocessing and model. At most
    `depth` writes wait; a write's failure is raised by the next `submit`, or on leaving the block.
    """

    def __init__(self, depth: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-write-behind")
        self._pending: list[Future[Any]] = []
        self._depth = depth

    def submit(self, fn: Any, *args: Any) -> None:
        while len(self._pending) >= self._depth:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(fn, *args))

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            for future in self._pending:
                if exc_type is None:
                    future.result()  # every write done (or its failure raised) before the outputs are completed
                else:
                    future.cancel()
        finally:
            self._pool.shutdown(wait=True)


def prefetched(chunks: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """The same chunks, read one step ahead on a thread: reading and parsing the next chunk (pyarrow,
    S3) overlaps predicting and writing this one. A failure on either side stops both and is raised here."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        items = iter(chunks)
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(("chunk", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # runs the reader's own `finally` (closing the S3 stream) on this thread

    worker = threading.Thread(target=produce, name="s3-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.1)
        worker.join()
