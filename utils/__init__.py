"""Shared helpers: image I/O, checkpoints, configuration and command-line plumbing.

Importing this package before Paddle keeps Paddle's start-up chatter (glog INFO lines, the ccache warning)
off stderr, so that a user mistake is reported on exactly one line, and lets Paddle's MKL use AVX2 on AMD
processors: without ``MKL_DEBUG_CPU_TYPE=5`` it takes a generic code path there and its matrix products
(the contextual attention's) run 2.7× slower (17.6 vs 48.1 GMAC/s measured on an EPYC, two threads).
"""
import os
import warnings

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("FLAGS_call_stack_level", "0")
warnings.filterwarnings("ignore", message="No ccache found")


def _amd_processor() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return "AuthenticAMD" in handle.read(4096)
    except OSError:
        return False


if _amd_processor():
    os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
