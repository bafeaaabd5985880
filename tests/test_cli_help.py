"""Every command explains itself: each flag has help text, and train.py / test.py list every --set key with
its default and meaning."""
from __future__ import annotations

import re
import sys

import pytest

from tests.conftest import run_command
from deepfill.utils.config import settings

COMMANDS = ["train.py", "test.py", "inpaint.py", "app.py", "tools/convert_tf_checkpoint.py",
            "tools/download_pretrained.py", "tools/export_model.py", "benchmarks/inference.py",
            "benchmarks/train_speed.py", "benchmarks/step_memory.py", "benchmarks/hd_strategy.py",
            "benchmarks/versus_pytorch.py", "benchmarks/growth.py"]


def options_without_help(text: str) -> list[str]:
    """Option lines of argparse's help that have no description on the same or the next line."""
    lines = text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not re.match(r"^  -", line):
            continue
        described = re.match(r"^  -\S.*?\S  +\S", line)
        continued = i + 1 < len(lines) and re.match(r"^ {6,}\S", lines[i + 1])
        if not described and not continued:
            missing.append(line.strip())
    return missing


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help(command):
    result = run_command(command, "--help")
    assert result.returncode == 0, result.stderr
    assert options_without_help(result.stdout) == [], result.stdout


@pytest.mark.parametrize("command", ["train.py", "test.py"])
def test_help_lists_every_setting_with_default_and_meaning(command):
    text = run_command(command, "--help").stdout
    for field in settings():
        line = next((l for l in text.splitlines() if l.startswith(f"  {field.name} ")), None)
        assert line is not None, field.name
        assert field.metadata["help"] in " ".join(line.split()), line
    assert re.search(r"^  image_size\s+64\s", text, re.M)          # the demo's default, which runs without --config


def test_versus_pytorch_names_what_is_missing(tmp_path):
    """The comparison with the PyTorch port refuses, on one line, a folder that is not the port or an
    interpreter that cannot run it (this project has no PyTorch, so its own interpreter is such a one)."""
    not_a_port = run_command("benchmarks/versus_pytorch.py", "--port", str(tmp_path), "--python", sys.executable)
    assert not_a_port.returncode == 2 and "no trainer.py" in not_a_port.stderr
    assert len(not_a_port.stderr.strip().splitlines()) == 1, not_a_port.stderr
    for name in ("trainer.py", "model/networks.py", "utils/tools.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    no_missing = run_command("benchmarks/versus_pytorch.py", "--port", str(tmp_path), "--python", sys.executable,
                             "--set", "batch_size=1")
    assert no_missing.returncode == 2 and "the PyTorch port stopped" in no_missing.stderr
    assert len(no_missing.stderr.strip().splitlines()) == 1, no_missing.stderr
