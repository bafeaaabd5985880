"""Keeping native libraries' console output off the user's terminal.

Paddle Inference's oneDNN passes and paddle2onnx print from C++ straight to the process's file descriptors
1 and 2, past Python's ``sys.stdout``; a command that promises one line per result (and one ``error:``
line per mistake) has to catch them at the descriptor level.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def captured_output(log: str | None = None) -> Iterator[None]:
    """Send what the process writes to descriptors 1 and 2 to the file ``log`` (appended), or nowhere."""
    with (open(log, "a", encoding="utf-8") if log else tempfile.TemporaryFile("w")) as target:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            for stream in (1, 2):
                os.dup2(target.fileno(), stream)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for stream, copy in zip((1, 2), saved):
                os.dup2(copy, stream)
                os.close(copy)
