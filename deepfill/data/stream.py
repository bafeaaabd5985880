"""Training batches that can never wedge the training process.

Batches are fetched by a helper thread and the training process waits for them on a Python queue, where
Ctrl-C and SIGTERM are handled at once and a failure arrives as ``DataLoadingFailed``:

* In the training process (``num_workers=0``) the helper thread assembles batches itself (a plain
  generator). Paddle's single-process loader is not used: when its reading thread raised, its queue was
  never closed and training waited forever in C++, deaf to SIGTERM and Ctrl-C (Paddle 3.3).
* With loader processes, Paddle's ``DataLoader`` reports a dead worker as an exception, but its reader waits
  in C++, where Python's signal handlers cannot run until a batch arrives; the helper thread does that
  waiting instead.

Loading in a thread also overlaps it with the training step, as Paddle's loader did.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterable, Iterator

import numpy as np
import paddle

POLL_SECONDS = 0.5
JOIN_SECONDS = 10.0


class DataLoadingFailed(Exception):
    """The data stream broke for good (a loader process died, no file is readable any more)."""


class StoppedWaitingForData(Exception):
    """A stop was requested and no batch arrived within the grace period."""


def first_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def in_process_batches(dataset, batch_sampler: Iterable[list]) -> Iterator[tuple[np.ndarray, ...]]:
    """Collate ``dataset`` items batch by batch, as Paddle's default collation would (stacked arrays)."""
    for items in batch_sampler:
        samples = [dataset[item] for item in items]
        yield tuple(np.stack(field) for field in zip(*samples))


class BatchStream:
    """Batches from ``source`` (tensors in host memory, or arrays) as arrays, pulled by a helper thread (started at the
    first batch), with failures as ``DataLoadingFailed``."""

    def __init__(self, source: Iterable) -> None:
        self._source = iter(source)
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def _fill(self) -> None:
        try:
            for batch in self._source:
                if not self._deliver((batch, None)):
                    return
        except Exception as error:          # reaches the training process through the queue
            self._deliver((None, error))
        finally:
            self._source = None             # lets Paddle shut its loader processes down

    def _deliver(self, item: tuple) -> bool:
        """Queue ``item`` as soon as there is room; False once the stream is closed."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _take(self, give_up: Callable[[], bool]) -> tuple:
        if self._thread is None:
            self._thread = threading.Thread(target=self._fill, name="training batches", daemon=True)
            self._thread.start()
        while True:
            try:
                batch, error = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if give_up():
                    raise StoppedWaitingForData from None
                if not self._thread.is_alive() and self._queue.empty():
                    raise DataLoadingFailed("the data loading thread ended") from None
                continue
            if error is not None:
                raise DataLoadingFailed(first_line(error)) from error
            return batch

    def next(self, give_up: Callable[[], bool] = lambda: False) -> list[np.ndarray]:
        """The next batch as host arrays: the caller sends to the device what it computes on there, and
        nothing else (on a GPU every transfer, and every read back, blocks). ``give_up`` is asked while
        waiting; when it says so, ``StoppedWaitingForData`` is raised."""
        try:
            batch = self._take(give_up)
        except (DataLoadingFailed, StoppedWaitingForData):
            raise
        except Exception as error:      # also Paddle's SIGCHLD handler's "loader process killed"
            raise DataLoadingFailed(first_line(error)) from error
        return [field.numpy() if isinstance(field, paddle.Tensor) else field for field in batch]   # CPU tensors

    def close(self) -> None:
        """Stop the helper thread and the loader processes, and wait for the thread to end: a thread still
        inside OpenCV or Paddle when the interpreter exits is torn down by forced unwinding through C++,
        which aborts the process (exit code -6 after a finished run)."""
        self._closed.set()
        source, self._source = self._source, None
        shutdown = getattr(source, "_try_shutdown_all", None)
        if shutdown is not None:
            shutdown(timeout=2.0)   # Paddle's loader: ends its processes and wakes a reader waiting in C++
        if self._thread is not None:
            deadline = time.monotonic() + JOIN_SECONDS
            while self._thread.is_alive() and time.monotonic() < deadline:
                self._drain()
                self._thread.join(timeout=0.05)

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
