"""The README's commands that can run here work exactly as written."""
from __future__ import annotations

import os
import re
import shlex

import cv2

from tests.conftest import ROOT, run_command


def readme_commands(prefix: str) -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        blocks = re.findall(r"```bash\n(.*?)```", handle.read(), re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith(prefix)]


def test_golden_checkpoint_commands_work_as_written():
    convert = readme_commands("python tools/convert_tf_checkpoint.py ../shared/")
    inpaint = readme_commands("python inpaint.py --checkpoint checkpoints/golden.pdparams")
    assert len(convert) == 1 and len(inpaint) == 1
    created = [shlex.split(convert[0])[-1]] + [
        arg for flag, arg in zip(shlex.split(inpaint[0]), shlex.split(inpaint[0])[1:])
        if flag in ("--output", "--flow")]
    try:
        for command in (convert[0], inpaint[0]):
            result = run_command(*shlex.split(command)[1:])
            assert result.returncode == 0, f"{command}\n{result.stderr}"
        image = cv2.imread(os.path.join(ROOT, "examples", "astronaut.png"))
        assert cv2.imread(os.path.join(ROOT, created[1])).shape == image.shape
    finally:
        for path in created:
            if os.path.exists(os.path.join(ROOT, path)):
                os.remove(os.path.join(ROOT, path))


def test_benchmarks_print_their_numbers():
    result = run_command("benchmarks/inference.py", "--size", "64", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    last = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split())
    assert last["size"] == "64" and float(last["median_s"]) > 0 and float(last["peak_rss_mb"]) > 0
    result = run_command("benchmarks/inference.py", "--sizes", "64,72", "--repeats", "1", "--eager")
    assert result.returncode == 0 and [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["64", "72"]
    result = run_command("benchmarks/train_speed.py", "--iterations", "1", "--set", "image_size=32",
                         "hole_size=16", "max_delta=4", "cnum=8", "critic_steps=1")
    assert result.returncode == 0 and "s per iteration" in result.stdout, result.stderr
