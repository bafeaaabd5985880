"""Shared fixtures: the golden tensors from the official graph and our conversion of its checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import utils  # noqa: F401  (quiets Paddle before it is imported)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "..", "shared", "golden", "official_v1")
sys.path.insert(0, ROOT)


def nchw(array: np.ndarray):
    """A golden NHWC array as an NCHW Paddle tensor."""
    import paddle
    return paddle.to_tensor(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def nhwc(tensor) -> np.ndarray:
    return tensor.numpy().transpose(0, 2, 3, 1)


def run_command(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def assert_refused(result, output: str, *words: str) -> None:
    """Exit 2, one line on stderr naming the problem, no traceback, no output file."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not os.path.exists(output)
    assert not [n for n in os.listdir(os.path.dirname(output) or ".") if n.startswith(".tmp-")]


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    path = os.path.join(GOLDEN, "tensors.npz")
    assert os.path.isfile(path), f"golden data missing: {path} (../shared must sit beside the project)"
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def golden_checkpoint(tmp_path_factory) -> str:
    """The golden TF checkpoint converted with the real command line."""
    out = str(tmp_path_factory.mktemp("converted") / "official_golden.pdparams")
    result = run_command("tools/convert_tf_checkpoint.py", os.path.join(GOLDEN, "tf_checkpoint"), out)
    assert result.returncode == 0, result.stderr
    return out
