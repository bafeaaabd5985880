"""Paddle's process-wide settings, made explicitly by each entry point before Paddle is imported.

``prepare_paddle()`` keeps Paddle's start-up chatter (glog INFO lines, the ccache warning) off stderr, so
that a user mistake is reported on exactly one line, and lets Paddle's MKL use AVX2 on AMD processors:
without ``MKL_DEBUG_CPU_TYPE=5`` it takes a generic code path there and its matrix products (the contextual
attention's) run several times slower (docs/performance.md). Environment variables
only reach Paddle if they are set before its first import, which is why this is a call at the top of every
command rather than something a library module does on import.

Importing this module also loads Python's zlib before Paddle. Paddle 2.6's wheel carries its own zlib and
exports its symbols to the whole process; if Paddle is loaded first, Python's zlib functions bind to that
copy and crash (a segfault, or "inconsistent stream state") at the first compression after it: importing
SciPy (which scikit-image, and so ``test.py`` and ``train.py``, load), reading a compressed ``.npz``.
Loaded first, the system's zlib is the one every later lookup finds. Paddle 3.3 does not export its zlib.
"""
from __future__ import annotations

import os
import warnings
import zlib  # noqa: F401  (loaded before Paddle: see the module's docstring)


def _amd_processor() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return "AuthenticAMD" in handle.read(4096)
    except OSError:
        return False


def prepare_paddle() -> None:
    """Set Paddle's logging and math-library environment; call before the first ``import paddle`` (this
    module's import has already loaded zlib by then). Values the user has already set are kept."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_call_stack_level", "0")
    warnings.filterwarnings("ignore", message="No ccache found")
    if _amd_processor():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


MMAP_THRESHOLD = 32 << 20    # glibc's largest allowed
KEPT_FREE_BYTES = (1 << 31) - 1
TOP_PAD = 256 << 20


def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks of up to 32 MB for reuse instead of giving them back to the system.

    A training step allocates and frees the same activations every time, and so do an inference pass's
    layers and a server's fills: 512² fills take 10 % less time than with glibc's defaults and peak
    lower once a few have run (677 against 748 MB over ten; a one-shot fill peaks at about 580 MB either
    way). By default glibc serves blocks
    over 128 KB–32 MB (its threshold adapts) with fresh ``mmap`` calls and unmaps them on free, so every
    step faults its memory in again, page by page (docs/performance.md, Training). Blocks
    under the threshold now come from the heap, which is not trimmed, so the process keeps its peak
    memory (training reaches it every step anyway). Returns whether the C library took the settings
    (false off glibc, where nothing changes)."""
    import ctypes
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    trim_threshold, top_pad, mmap_threshold = -1, -2, -3
    return all(mallopt(parameter, value) == 1 for parameter, value in
               ((mmap_threshold, MMAP_THRESHOLD), (trim_threshold, KEPT_FREE_BYTES), (top_pad, TOP_PAD)))
