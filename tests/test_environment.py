"""Process settings the commands make (``deepfill.utils.environment``): freed memory kept for reuse, zlib bound
before Paddle loads."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from deepfill.utils.environment import keep_freed_memory
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):        # a step's activations: several blocks of 16 MB, all freed at its end
    blocks = [np.ones(4 << 20, np.float32) for _ in range(4)]
    del blocks
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_kept_memory_is_reused_without_faulting_it_in_again():
    """Training allocates and frees the same activations every step; after ``keep_freed_memory`` a freed
    16 MB block is reused as it is instead of being unmapped and faulted in again, page by page."""
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "kept")}
    assert faults["default"] > 5 * 4096             # blocks of 4096 pages faulted in again and again
    assert faults["kept"] < faults["default"] / 5



_ZLIB_AFTER_PADDLE = """
import io
from deepfill.utils.environment import prepare_paddle
prepare_paddle()
import paddle
import zlib
import numpy as np
assert zlib.decompress(zlib.compress(b"x" * 100000)) == b"x" * 100000
buffer = io.BytesIO()
np.savez_compressed(buffer, a=np.arange(1000))
buffer.seek(0)
assert int(np.load(buffer)["a"].sum()) == 499500
import scipy.sparse.linalg
print("ok")
"""


def test_zlib_works_after_paddle_is_imported():
    """What the commands do after ``import paddle`` with zlib — SciPy's import (through scikit-image), a
    compressed ``.npz`` — works: under Paddle 2.6, whose wheel exports its own zlib to the process, each
    of these crashed unless Python's zlib was loaded first (``deepfill.utils.environment`` loads it)."""
    result = subprocess.run([sys.executable, "-c", _ZLIB_AFTER_PADDLE], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
