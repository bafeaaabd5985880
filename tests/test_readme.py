"""The README's commands that can run here work exactly as written — in a copy of the project, with the golden
TF checkpoint written at ../shared/golden/official_v1/tf_checkpoint beside the copy, so that the checkout is
neither read for data nor written to, and ../shared need not exist."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import cv2
import pytest

from tests.conftest import ROOT, run_command
from tests.golden_data import write_golden_bundle

# Never copied: version control, caches, and what commands and tests leave in the checkout (see .gitignore).
SKIPPED_NAMES = {".git", "__pycache__", ".pytest_cache"}
SKIPPED_AT_TOP = {"runs", "outputs", "tmp", "log", "eval_pictures", "exported"}


def project_files() -> list[str]:
    """The project's files as a clone would hold them plus work in progress: git's tracked and untracked,
    not ignored files when the checkout is a git work tree, else every file but the skipped ones."""
    if os.path.exists(os.path.join(ROOT, ".git")):
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
        return sorted({path for path in listed if path and os.path.isfile(os.path.join(ROOT, path))})
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        relative = os.path.relpath(folder, ROOT)
        subfolders[:] = [d for d in subfolders if d not in SKIPPED_NAMES
                         and not (relative == "." and d in SKIPPED_AT_TOP)]
        if relative == "checkpoints":
            names = [n for n in names if n == "README.md"]
        files += [os.path.normpath(os.path.join(relative, n)) for n in names]
    return sorted(files)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> str:
    """``<tmp>/main``: a copy of the project; ``<tmp>/shared/golden/official_v1/tf_checkpoint``: the golden
    TF checkpoint, where the README's ``../shared/...`` paths find it."""
    base = tmp_path_factory.mktemp("readme")
    copy = base / "main"
    for path in project_files():
        os.makedirs(copy / os.path.dirname(path), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), copy / path)
    os.makedirs(copy / "checkpoints", exist_ok=True)
    write_golden_bundle(str(base / "shared" / "golden" / "official_v1" / "tf_checkpoint"))
    return str(copy)


def readme_commands(project: str, prefix: str) -> list[str]:
    with open(os.path.join(project, "README.md"), encoding="utf-8") as handle:
        blocks = re.findall(r"```bash\n(.*?)```", handle.read(), re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith(prefix)]


def test_golden_checkpoint_commands_work_as_written(project):
    convert = readme_commands(project, "python tools/convert_tf_checkpoint.py ../shared/")
    inpaint = readme_commands(project, "python inpaint.py --checkpoint checkpoints/golden.pdparams")
    assert len(convert) == 1 and len(inpaint) == 1
    created = [shlex.split(convert[0])[-1]] + [
        arg for flag, arg in zip(shlex.split(inpaint[0]), shlex.split(inpaint[0])[1:])
        if flag in ("--output", "--flow")]
    for path in created:
        assert not os.path.exists(os.path.join(project, path)), path
    for command in (convert[0], inpaint[0]):
        result = run_command(*shlex.split(command)[1:], cwd=project)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    image = cv2.imread(os.path.join(project, "examples", "images", "astronaut.png"))
    assert cv2.imread(os.path.join(project, created[1])).shape == image.shape
    assert all(os.path.isfile(os.path.join(project, path)) for path in created)


def test_benchmarks_print_their_numbers(project):
    result = run_command("benchmarks/inference.py", "--size", "64", "--repeats", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    last = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split())
    assert last["size"] == "64" and float(last["median_s"]) > 0 and float(last["peak_rss_mb"]) > 0
    result = run_command("benchmarks/inference.py", "--sizes", "64,72", "--repeats", "1", "--backend",
                         "paddle-inference", cwd=project)           # exports once, then one process per size
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert result.returncode == 0 and [(row[0], row[-1]) for row in rows] == [("64", "paddle-inference"),
                                                                              ("72", "paddle-inference")], result.stdout
    result = run_command("benchmarks/train_speed.py", "--iterations", "1", "--set", "image_size=32",
                         "hole_size=16", "max_delta=4", "cnum=8", "critic_steps=1", cwd=project)
    assert result.returncode == 0 and "s per iteration" in result.stdout, result.stderr
    result = run_command("benchmarks/hd_strategy.py", "--strategy", "crop", "--size", "600", "--hole", "16",
                         "--repeats", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    last = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split())
    assert last["strategy"] == "crop" and float(last["median_s"]) > 0 and last["known_pixels_identical"] == "True"
