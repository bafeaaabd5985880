"""The documentation's commands work as written. README.md and docs/*.md (and the other Markdown pages of the
project) are read together, wherever a command now lives:

- the commands that can run here are run exactly as written — in a copy of the project, with the golden TF
  checkpoint written at ../shared/golden/official_v1/tf_checkpoint beside the copy, so that the checkout is
  neither read for data nor written to, and ../shared need not exist;
- every ``python ...`` line of a bash block names a script or module that exists, each ``--flag`` is one its
  ``--help`` lists and each ``--set key=value`` key is a real setting;
- every relative link and picture points at a file of the project (and a heading of it, for ``#anchor``)."""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import cv2
import pytest

from deepfill.utils.config import settings

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


def documents() -> list[str]:
    """The project's Markdown pages (README.md first, then docs/, then the folders' READMEs), relative paths."""
    pages = [path for path in project_files() if path.endswith(".md") and not path.startswith("tests/")]
    return sorted(pages, key=lambda path: (path != "README.md", not path.startswith("docs/"), path))


def code_blocks(root: str, language: str) -> list[str]:
    """The fenced code blocks of one language in every page, in page order."""
    blocks = []
    for page in documents():
        with open(os.path.join(root, page), encoding="utf-8") as handle:
            blocks += re.findall(rf"```{language}\n(.*?)```", handle.read(), re.DOTALL)
    return blocks


def documented_commands(root: str, prefix: str) -> list[str]:
    """The lines of the pages' bash blocks that start with ``prefix``."""
    return [line for block in code_blocks(root, "bash") for line in block.splitlines() if line.startswith(prefix)]


def test_golden_checkpoint_commands_work_as_written(project):
    convert = documented_commands(project, "python tools/convert_tf_checkpoint.py ../shared/")
    inpaint = documented_commands(project, "python inpaint.py --checkpoint checkpoints/golden.pdparams")
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
    result = run_command("benchmarks/growth.py", "--sizes", "64,72", "--repeats", "1", "--plot", "growth.png",
                         cwd=project)                              # a table of sizes and the log-log picture
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("  64x", "  72x"))]
    assert result.returncode == 0 and len(rows) == 2 and float(rows[1][1]) > 0, result.stderr
    assert cv2.imread(os.path.join(project, "growth.png")).shape[0] > 100
    result = run_command("benchmarks/train_speed.py", "--iterations", "1", "--kernels", "--set", "image_size=32",
                         "hole_size=16", "max_delta=4", "cnum=8", "critic_steps=1", cwd=project)
    assert result.returncode == 0 and "s per iteration" in result.stdout, result.stderr
    kernel_time = re.search(r"oneDNN kernels +([0-9.]+) s .* GMAC at +([0-9.]+) GMAC/s", result.stdout)
    assert kernel_time and float(kernel_time.group(2)) > 0 or "no oneDNN kernel ran" in result.stdout, result.stdout
    result = run_command("benchmarks/step_memory.py", "--set", "image_size=32", "hole_size=16", "max_delta=4",
                         "cnum=8", "critic_steps=1", "onednn=false", cwd=project)
    peaks = re.findall(r"(critic|generator) update (\d+) MiB", result.stdout)
    assert result.returncode == 0 and [kind for kind, _ in peaks] == ["critic", "generator"], result.stderr
    result = run_command("benchmarks/hd_strategy.py", "--strategy", "crop", "--size", "600", "--hole", "16",
                         "--repeats", "1", cwd=project)
    assert result.returncode == 0, result.stderr
    last = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split())
    assert last["strategy"] == "crop" and float(last["median_s"]) > 0 and last["known_pixels_identical"] == "True"


SHELL_SEPARATORS = {"&&", "||", "|", ";", ">", ">>", "<"}
SETTING_FLAGS = {"--set", "--compare"}          # their values are KEY=VALUE pairs of deepfill/utils/config.py's settings
LAUNCHER = "paddle.distributed.launch"          # python -m paddle.distributed.launch [its flags] SCRIPT [flags]


def python_invocations(line: str) -> list[tuple[str, list[str]]]:
    """What a ``python ...`` line runs, as (program, its words) pairs: ``X.py`` for a script, ``-m M`` for a
    module; Paddle's launcher gives two pairs, its own flags and the script it launches with the script's."""
    words = shlex.split(line, comments=True)
    words = words[:next((i for i, word in enumerate(words) if word in SHELL_SEPARATORS), len(words))]
    if words[1] != "-m":
        return [(words[1], words[2:])]
    module, rest = words[2], words[3:]
    if module == LAUNCHER:
        script = next(i for i, word in enumerate(rest) if word.endswith(".py"))
        return [(f"-m {module}", rest[:script]), (rest[script], rest[script + 1:])]
    return [(f"-m {module}", rest)]


def project_program(program: str) -> str | None:
    """The project file a program runs (``train.py``, ``-m tests.browser``), None for another package's module."""
    if program.startswith("-m "):
        path = program[3:].replace(".", "/") + ".py"
        return path if os.path.isfile(os.path.join(ROOT, path)) else None
    return program


def documented_invocations() -> list[tuple[str, str, list[str]]]:
    """(line, program, words) for every ``python ...`` line of the pages' bash blocks."""
    return [(line, program, words) for line in documented_commands(ROOT, "python ")
            for program, words in python_invocations(line)]


@pytest.fixture(scope="module")
def help_flags() -> dict[str, set[str]]:
    """The flags each documented program's ``--help`` lists, every program asked once and all at once."""
    programs = sorted({program for _, program, _ in documented_invocations()
                       if project_program(program) or program == f"-m {LAUNCHER}"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH"))))}
    with tempfile.TemporaryDirectory() as scratch:           # the launcher would write its log/ folder here
        running = {program: subprocess.Popen([sys.executable, *shlex.split(program), "--help"],
                                             cwd=ROOT if project_program(program) else scratch, env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for program in programs}
        outputs = {program: process.communicate(timeout=300) for program, process in running.items()}
    for program, process in running.items():
        assert process.returncode == 0, f"python {program} --help\n{outputs[program][1]}"
    return {program: set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", stdout))
            for program, (stdout, _) in outputs.items()}


def test_documented_commands_use_real_scripts_flags_and_settings(help_flags):
    invocations = documented_invocations()
    programs = {program for _, program, _ in invocations}
    assert {"train.py", "test.py", "inpaint.py", "app.py", "tools/download_pretrained.py",
            "tools/export_model.py", f"-m {LAUNCHER}", "-m pytest"} <= programs, programs
    keys = {field.name for field in settings()}
    for line, program, words in invocations:
        if not project_program(program) and program != f"-m {LAUNCHER}":
            assert importlib.util.find_spec(program[3:]) is not None, line      # pytest, pip, venv
            continue
        assert os.path.isfile(os.path.join(ROOT, project_program(program) or "")) or program == f"-m {LAUNCHER}", line
        flag = None
        for word in words:
            if word.startswith("--"):
                flag = word.split("=")[0]
                assert flag in help_flags[program], f"{flag} is not an option of {program}: {line}"
            elif flag in SETTING_FLAGS:
                assert word.split("=")[0] in keys and "=" in word, f"{word} is not a setting: {line}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)|<(?:img|a)\b[^>]*\b(?:src|href)=\"([^\"]+)\"")


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens, -1, -2 ...
    after a repeated one."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.DOTALL), re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        repeated = sum(1 for a in anchors if a == anchor or re.fullmatch(rf"{re.escape(anchor)}-\d+", a))
        anchors.add(f"{anchor}-{repeated}" if repeated else anchor)
    return anchors


def test_relative_links_and_pictures_point_at_project_files():
    files = set(project_files())
    folders = {os.path.dirname(path) for path in files}
    texts = {}
    for page in documents():
        with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
            texts[page] = handle.read()
    checked = 0
    for page, text in texts.items():
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        for match in LINK.finditer(prose):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            assert resolved in files or resolved in folders, f"{page}: {target} does not exist"
            if anchor:
                assert resolved in texts and anchor in heading_anchors(texts[resolved]), f"{page}: {target}"
            checked += 1
    assert checked >= 20
