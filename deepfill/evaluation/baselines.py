"""Which classical baselines can run here: one that cannot (a missing optional package, a hole beyond its
limit) is left out with a note instead of failing an evaluation."""
from __future__ import annotations

import sys

from deepfill.tester import baseline_unavailable


def usable_baselines(names: list[str], largest_hole: int) -> tuple[list[str], dict[str, str]]:
    """The baselines of ``names`` that can run on holes of up to ``largest_hole`` pixels, and why each of
    the others cannot (also said on stderr)."""
    usable, skipped = [], {}
    for name in names:
        reason = baseline_unavailable(name, largest_hole)
        if reason:
            skipped[name] = reason
            print(f"note: baseline {name} skipped: {reason}", file=sys.stderr)
        else:
            usable.append(name)
    return usable, skipped
