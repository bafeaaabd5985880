"""Benchmarks measure each case in a fresh process, so that peak memory is the case's own; the child's last
line of output is machine-readable (``key=value ...``)."""
from __future__ import annotations

import subprocess


def measure_fresh(command: list[str]) -> tuple[dict[str, str] | None, str]:
    """Run ``command`` and return its last line's ``key=value`` fields, or None and the failure's last line."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        return None, (result.stderr.strip().splitlines() or ["?"])[-1]
    return dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split()), ""
