"""Paddle's process-wide settings, made explicitly by each entry point before Paddle is imported.

``prepare_paddle()`` keeps Paddle's start-up chatter (glog INFO lines, the ccache warning) off stderr, so
that a user mistake is reported on exactly one line, and lets Paddle's MKL use AVX2 on AMD processors:
without ``MKL_DEBUG_CPU_TYPE=5`` it takes a generic code path there and its matrix products (the contextual
attention's) run 2.7× slower (17.6 vs 48.1 GMAC/s measured on an EPYC, two threads). Environment variables
only reach Paddle if they are set before its first import, which is why this is a call at the top of every
command rather than something a library module does on import.
"""
from __future__ import annotations

import os
import warnings


def _amd_processor() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return "AuthenticAMD" in handle.read(4096)
    except OSError:
        return False


def prepare_paddle() -> None:
    """Set Paddle's logging and math-library environment; call before the first ``import paddle``.
    Values the user has already set are kept."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_call_stack_level", "0")
    warnings.filterwarnings("ignore", message="No ccache found")
    if _amd_processor():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
