"""Shared fixtures: the golden tensors from the official graph (kept small in ``tests/golden``, see
``tests/golden/make_golden.py``), the golden TF checkpoint rebuilt from its recipe, and its conversion."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import warnings

import numpy as np
import pytest

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from tests import golden_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nchw(array: np.ndarray):
    """A golden NHWC array as an NCHW Paddle tensor."""
    import paddle
    return paddle.to_tensor(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def nhwc(tensor) -> np.ndarray:
    return tensor.numpy().transpose(0, 2, 3, 1)


def run_command(*args: str, cwd: str = ROOT, timeout: float = 600, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess:
    """Run one of the project's scripts as a user would, from the project folder ``cwd``, whose packages
    come first on the path (a checkout other than the pip-installed one tests its own code), with ``env``
    added to the environment. A command still running after ``timeout`` seconds fails the test
    (``subprocess.TimeoutExpired``)."""
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, (cwd, os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


FILL_PATHS = ["forward", "fill_holes", "export graph"]


def fill_by(path: str, generator, x, mask) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``(x_stage2, offsets, kept)`` of an eval-mode ``generator`` (built with ``per_sample_mask``) for
    NCHW tensors, by one of the paths that compute a fill: its own ``forward``; ``fill_holes`` (inference
    and the critic steps), whose ``x_stage2`` counts inside the hole only and its offsets where
    ``hole_reach`` keeps them; or the export's graph, traced by ``paddle.jit.to_static`` and run here.
    ``kept``: bool N×H×W (pixels) and H/8×W/8 (offsets) — where the path's outputs are meant to be exact."""
    import paddle
    from deepfill.inpainting.export import trace, traceable_attention
    from deepfill.models.hole_reach import fill_holes, hole_reach
    holes = mask.numpy()
    pixels = np.ones((x.shape[0], *x.shape[2:]), bool)
    positions = np.ones((x.shape[2] // 8, x.shape[3] // 8), bool)
    with paddle.no_grad():
        if path == "forward":
            _, x_stage2, offsets = generator(x, mask)
        elif path == "fill_holes":
            x_stage2, offsets = fill_holes(generator, x, mask)
            pixels = np.broadcast_to(holes[:, 0] > 0.5, pixels.shape)
            positions = hole_reach(generator.refine, holes)
        else:
            with traceable_attention(generator), warnings.catch_warnings():
                warnings.simplefilter("ignore")          # Paddle's notes on tracing
                x_stage2, offsets = trace(generator)(x, mask)
    return x_stage2.numpy(), offsets.numpy(), (pixels, positions)


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


@pytest.fixture(scope="session", autouse=True)
def kernels_of_a_cpu_run():
    """The tests run the model on the kernels a CPU run chooses (``deepfill.models.kernels.choose``: oneDNN's, where
    it works); those that compare backends switch with ``kernels.using``."""
    from deepfill.models import kernels
    kernels.choose()


@pytest.fixture(autouse=True)
def kernels_kept():
    """A test that chooses kernels for the process (a ``Trainer`` does) leaves the next one the kernels it
    found."""
    from deepfill.models import kernels
    with kernels.kept():
        yield


@pytest.fixture(scope="module", params=["onednn", "paddle"])
def backend(request) -> str:
    """Each backend of ``deepfill.models.kernels`` in turn, installed for the tests of a module that ask for it."""
    from deepfill.models import kernels
    with kernels.using(request.param):
        yield request.param


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """The official graph's tensors (NHWC), from tests/golden/tensors.npz."""
    return golden_data.load_tensors()


@pytest.fixture(scope="session")
def train_step_golden() -> dict[str, np.ndarray]:
    """One official training step, reduced: losses, inputs, per-gradient summaries, a few whole gradients."""
    return golden_data.load_train_step()


@pytest.fixture(scope="session")
def golden_tf_checkpoint(tmp_path_factory) -> str:
    """A folder holding the golden TF checkpoint (the official variable names and distractors, 111 entries),
    written from weights.json's recipe: ``tf_checkpoint/checkpoint`` and ``tf_checkpoint/snap-0.*``."""
    return golden_data.write_golden_bundle(str(tmp_path_factory.mktemp("golden") / "tf_checkpoint"))


@pytest.fixture(scope="session")
def golden_checkpoint(tmp_path_factory, golden_tf_checkpoint) -> str:
    """The golden TF checkpoint converted with the real command line."""
    out = str(tmp_path_factory.mktemp("converted") / "official_golden.pdparams")
    result = run_command("tools/convert_tf_checkpoint.py", golden_tf_checkpoint, out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def golden_v2_tf_checkpoint(tmp_path_factory) -> str:
    """A folder holding the v2 golden TF checkpoint, as a v2 release folder holds one."""
    from tests import golden_v2_data
    return golden_v2_data.write_v2_bundle(str(tmp_path_factory.mktemp("golden_v2") / "tf_checkpoint"))


@pytest.fixture(scope="session")
def golden_v2_checkpoint(tmp_path_factory, golden_v2_tf_checkpoint) -> str:
    """The v2 golden TF checkpoint converted with the real command line (DeepFill v2, cnum 48, 256/128)."""
    out = str(tmp_path_factory.mktemp("converted_v2") / "official_v2_golden.pdparams")
    result = run_command("tools/convert_tf_checkpoint.py", golden_v2_tf_checkpoint, out)
    assert result.returncode == 0, result.stderr
    assert "DeepFill v2" in result.stdout
    return out


@pytest.fixture(scope="session")
def shared_golden() -> str:
    """The full golden data, ../shared/golden/official_v1, for extra checks; skipped when it is absent."""
    if not os.path.isdir(golden_data.SHARED_GOLDEN_DIR):
        pytest.skip(f"{golden_data.SHARED_GOLDEN_DIR} is absent (the full golden data is optional)")
    return golden_data.SHARED_GOLDEN_DIR


APP_MAX_PIXELS = 256 * 256


@pytest.fixture(scope="session")
def app_server(golden_checkpoint, tmp_path_factory):
    """``app.py`` serving the golden checkpoint on 127.0.0.1 (pictures over 256×256 refused, an empty
    cache folder), for the API and the browser tests; stopped at the end of the session."""
    from tests.app_server import serving
    home = str(tmp_path_factory.mktemp("empty_cache"))
    with serving(golden_checkpoint, "--max-pixels", str(APP_MAX_PIXELS), env={"DEEPFILL_HOME": home}) as server:
        yield server


@pytest.fixture(scope="session")
def model_cache(golden_tf_checkpoint, golden_v2_tf_checkpoint, tmp_path_factory) -> str:
    """A cache folder ($DEEPFILL_HOME) holding ``places2`` (the golden v1 bundle) and, fetched before it,
    ``places2_v2`` (the golden v2 bundle), converted by ``deepfill.models.pretrained`` as a download would be."""
    from deepfill.models import pretrained
    home = str(tmp_path_factory.mktemp("model_cache"))
    previous = os.environ.get(pretrained.HOME_VARIABLE)
    os.environ[pretrained.HOME_VARIABLE] = home
    try:
        pretrained.fetch("places2_v2", folder=golden_v2_tf_checkpoint)
        pretrained.fetch("places2", folder=golden_tf_checkpoint)
    finally:
        if previous is None:
            del os.environ[pretrained.HOME_VARIABLE]
        else:
            os.environ[pretrained.HOME_VARIABLE] = previous
    return home


@pytest.fixture(scope="session")
def menu_server_process(model_cache):
    """``app.py --checkpoint places2_v2`` with ``model_cache``: two models in its menu."""
    from tests.app_server import serving
    with serving("places2_v2", "--max-pixels", str(APP_MAX_PIXELS), env={"DEEPFILL_HOME": model_cache}) as server:
        yield server


@pytest.fixture()
def menu_server(menu_server_process):
    """The menu server serving places2_v2, as it started, whatever model an earlier test switched it to."""
    request = urllib.request.Request(menu_server_process.url + "/api/model", data=b'{"name": "places2_v2"}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        assert answer.status == 200
    return menu_server_process
