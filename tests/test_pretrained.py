"""Pretrained models by name: download (a local HTTP mirror; Google Drive up to the network call), conversion,
the checksummed cache, every failure as one line, and the Python API. No test reaches the internet; every
test has its own cache folder ($DEEPFILL_HOME)."""
from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np
import pytest

from deepfill.models import pretrained
from deepfill.models.checkpoint import load_checkpoint
from tests.conftest import ROOT, assert_refused, run_command
from tests.test_readme import code_blocks
from deepfill.utils.errors import UserError


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, golden) -> tuple[str, str]:
    """(image, mask) files: the golden input as an 8-bit picture and its hole."""
    folder = tmp_path_factory.mktemp("pictures")
    cv2.imwrite(str(folder / "photo.png"), np.round((golden["x"][0] + 1) * 127.5).astype(np.uint8))
    cv2.imwrite(str(folder / "mask.png"), (golden["mask"][0, :, :, 0] > 0.5).astype(np.uint8) * 255)
    return str(folder / "photo.png"), str(folder / "mask.png")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> str:
    """A fresh cache folder for every test, and no mirror unless the test sets one."""
    home = str(tmp_path / "cache")
    monkeypatch.setenv("DEEPFILL_HOME", home)
    monkeypatch.delenv("DEEPFILL_MIRROR", raising=False)
    return home


def as_drive_delivers(bundle: str, folder: str) -> str:
    """A copy of a TF checkpoint folder with ``checkpoint`` renamed ``checkpoint.txt``, as Drive hands it out."""
    os.makedirs(folder)
    for name in os.listdir(bundle):
        shutil.copy(os.path.join(bundle, name), os.path.join(folder, "checkpoint.txt" if name == "checkpoint"
                                                             else name))
    return folder


@pytest.fixture(scope="module")
def release_folder(tmp_path_factory, golden_tf_checkpoint) -> str:
    """The golden TF checkpoint as one release folder downloaded by hand."""
    return as_drive_delivers(golden_tf_checkpoint, str(tmp_path_factory.mktemp("by_hand") / "release"))


@pytest.fixture(scope="module")
def v2_release_folder(tmp_path_factory, golden_v2_tf_checkpoint) -> str:
    """The v2 golden TF checkpoint (with its Adam slots) as one v2 release folder downloaded by hand."""
    return as_drive_delivers(golden_v2_tf_checkpoint, str(tmp_path_factory.mktemp("by_hand_v2") / "release"))


@pytest.fixture(scope="module")
def mirror_folder(tmp_path_factory, release_folder, v2_release_folder) -> str:
    """A mirror of the releases: ``places2/`` and ``celeba/`` hold the golden bundle, ``places2_v2/`` and
    ``celebahq_v2/`` the v2 golden bundle, ``quota/`` holds a Drive quota page where the index should be."""
    root = tmp_path_factory.mktemp("mirror")
    for name in ("places2", "celeba", "quota"):
        shutil.copytree(release_folder, root / name)
    for name in ("places2_v2", "celebahq_v2"):
        shutil.copytree(v2_release_folder, root / name)
    (root / "quota" / "snap-0.index").write_text("<!DOCTYPE html><html><body>Google Drive - Quota exceeded"
                                                 "</body></html>")
    return str(root)


@contextmanager
def serving(folder: str, log: str, *options: str) -> Iterator[str]:
    """Run tests/mirror_server.py on ``folder``; yield its base URL; stop it at the end."""
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "mirror_server.py"), folder, log,
                                *options], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the mirror server did not start within 30 s"
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


@pytest.fixture(scope="module")
def mirror(mirror_folder, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(base URL, request log) of a mirror server shared by this module's tests."""
    log = str(tmp_path_factory.mktemp("mirror_log") / "requests.log")
    open(log, "w").close()
    with serving(mirror_folder, log) as url:
        yield url, log


def requests(log: str) -> list[str]:
    with open(log, encoding="utf-8") as handle:
        return handle.read().split()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def entry_files(cache: str) -> list[str]:
    """What a cache folder holds besides the lock files."""
    return sorted(n for n in os.listdir(cache) if not n.endswith(".lock")) if os.path.isdir(cache) else []


def test_first_use_downloads_converts_caches_and_inpaints(mirror, cache, golden_checkpoint, pictures,
                                                          tmp_path, monkeypatch):
    url, log = mirror
    image, mask = pictures
    monkeypatch.setenv("DEEPFILL_MIRROR", url)
    before = len(requests(log))
    output = str(tmp_path / "filled.png")
    result = run_command("inpaint.py", "--checkpoint", "places2", "--image", image, "--mask", mask,
                         "--output", output)
    assert result.returncode == 0, result.stderr
    assert "fetching it once from " + url + "/places2/" in result.stderr
    assert requests(log)[before:] == ["/places2/checkpoint.txt", "/places2/snap-0.index",
                                      "/places2/snap-0.data-00000-of-00001"]
    assert entry_files(cache) == ["places2.pdparams", "places2.sha256"]
    with open(os.path.join(cache, "places2.sha256"), encoding="ascii") as handle:
        assert handle.read() == f"{pretrained.sha256_of(os.path.join(cache, 'places2.pdparams'))}  places2.pdparams\n"

    filled, original = cv2.imread(output), cv2.imread(image)
    hole = cv2.imread(mask, cv2.IMREAD_GRAYSCALE) > 127
    assert filled.shape == original.shape and (filled[~hole] == original[~hole]).all()
    assert not (filled[hole] == original[hole]).all()

    # The cached model is the golden bundle, converted exactly as the converter does it, named as pretrained.
    cached, converted = load_checkpoint("places2"), load_checkpoint(golden_checkpoint)
    assert cached.path == os.path.join(cache, "places2.pdparams")
    assert cached.spec.source == "pretrained places2 (official v1.0.0 release, Places2)"
    assert (cached.spec.channel_order, cached.spec.image_size, cached.spec.hole_size) == ("BGR", 128, 64)
    assert set(cached.critics) == set(converted.critics) == {"critic_local", "critic_global"}
    for name, value in converted.generator.items():
        np.testing.assert_array_equal(cached.generator[name], value, err_msg=name)

    # Second use: from the cache, nothing reaches the server.
    count = len(requests(log))
    result = run_command("tools/download_pretrained.py", "places2")
    assert result.returncode == 0 and "already in the cache" in result.stdout, result.stderr
    assert len(requests(log)) == count


def test_v2_first_use_downloads_converts_caches_and_inpaints(mirror, cache, golden_v2_checkpoint, pictures,
                                                             tmp_path, monkeypatch):
    """``--checkpoint places2_v2`` fetches the v2 release from the mirror, converts what the official graph
    names (generator and SN-PatchGAN critic, not the Adam slots) and fills with DeepFill v2."""
    url, log = mirror
    image, mask = pictures
    monkeypatch.setenv("DEEPFILL_MIRROR", url)
    before = len(requests(log))
    output = str(tmp_path / "filled.png")
    result = run_command("inpaint.py", "--checkpoint", "places2_v2", "--image", image, "--mask", mask,
                         "--output", output)
    assert result.returncode == 0, result.stderr
    assert "fetching it once from " + url + "/places2_v2/" in result.stderr
    assert requests(log)[before:] == ["/places2_v2/checkpoint.txt", "/places2_v2/snap-0.index",
                                      "/places2_v2/snap-0.data-00000-of-00001"]
    assert entry_files(cache) == ["places2_v2.pdparams", "places2_v2.sha256"]
    filled, original = cv2.imread(output), cv2.imread(image)
    hole = cv2.imread(mask, cv2.IMREAD_GRAYSCALE) > 127
    assert filled.shape == original.shape and (filled[~hole] == original[~hole]).all()
    assert not (filled[hole] == original[hole]).all()

    cached, converted = load_checkpoint("places2_v2"), load_checkpoint(golden_v2_checkpoint)
    assert cached.spec.source == "pretrained places2_v2 (official v2.0.0 release, Places2)"
    assert (cached.spec.version, cached.spec.cnum, cached.spec.channel_order) == (2, 48, "BGR")
    assert (cached.spec.image_size, cached.spec.hole_size) == (256, 128)
    assert sorted(cached.critics) == ["critic"] and not any("Adam" in name for name in cached.generator)
    assert sorted(cached.generator) == sorted(converted.generator)
    for name, value in converted.generator.items():
        np.testing.assert_array_equal(cached.generator[name], value, err_msg=name)
    for name, value in converted.critics["critic"].items():
        np.testing.assert_array_equal(cached.critics["critic"][name], value, err_msg=name)


def test_v2_by_url_by_hand_and_through_the_python_api(mirror, v2_release_folder, cache):
    url, _ = mirror
    result = run_command("tools/download_pretrained.py", "celebahq_v2", "--url", url + "/celebahq_v2")
    assert result.returncode == 0, result.stderr
    assert "celebahq_v2 (DeepFill v2, CelebA-HQ)" in result.stdout and "DeepFill v2, cnum 48" in result.stdout
    result = run_command("tools/download_pretrained.py", "places2_v2", "--from", v2_release_folder)
    assert result.returncode == 0, result.stderr
    assert entry_files(cache) == ["celebahq_v2.pdparams", "celebahq_v2.sha256", "places2_v2.pdparams",
                                  "places2_v2.sha256"]
    from deepfill import Inpainter
    inpainter = Inpainter.from_pretrained("celebahq_v2", device="cpu")
    assert inpainter.spec.version == 2 and "celebahq_v2" in inpainter.spec.source
    image = np.full((64, 96, 3), 120, np.uint8)
    image[:, 48:] = 30
    hole = np.zeros((64, 96), bool)
    hole[20:40, 30:60] = True
    completed = inpainter(image, hole)
    assert completed.shape == image.shape and (completed[~hole] == image[~hole]).all()


def test_a_release_of_the_other_generation_is_refused(release_folder, v2_release_folder, cache):
    with pytest.raises(UserError, match="hold DeepFill v1, but places2_v2 is the official DeepFill v2 model"):
        pretrained.fetch("places2_v2", folder=release_folder)
    with pytest.raises(UserError, match="hold DeepFill v2, but celeba is the official DeepFill v1 model"):
        pretrained.fetch("celeba", folder=v2_release_folder)
    assert entry_files(cache) == []


def test_what_a_v2_release_lacks_is_named_in_one_line(cache, tmp_path, capfd):
    """A release without part of the critic still gives the generator (the critic is left out, named); one
    without part of the generator is refused, naming the tensor."""
    from tests import golden_v2_data
    from tests.tf_bundle_writer import write_bundle, write_checkpoint_state
    tensors = golden_v2_data.rebuild_weights()
    del tensors["discriminator/sn_patch_gan/conv6/kernel_sn/u"]
    folder = tmp_path / "no_critic"
    folder.mkdir()
    write_bundle(str(folder / "snap-0"), tensors)
    write_checkpoint_state(str(folder), "snap-0")
    pretrained.fetch("places2_v2", folder=str(folder))
    notes = [line for line in capfd.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "discriminator/sn_patch_gan/conv6/kernel_sn/u" in notes[0], notes
    assert load_checkpoint("places2_v2").critics == {}
    del tensors["inpaint_net/conv1/kernel"]
    write_bundle(str(folder / "snap-0"), tensors)
    with pytest.raises(UserError, match="not a complete DeepFill v2 generator: inpaint_net/conv1/kernel"):
        pretrained.fetch("celebahq_v2", folder=str(folder))


def test_download_command_takes_a_url_and_force_fetches_again(mirror, cache):
    url, log = mirror
    result = run_command("tools/download_pretrained.py", "celeba", "--url", url + "/celeba")
    assert result.returncode == 0, result.stderr
    assert f"wrote {os.path.join(cache, 'celeba.pdparams')}" in result.stdout
    assert load_checkpoint("celeba").spec.source.startswith("pretrained celeba")
    count = len(requests(log))
    pretrained.fetch("celeba", url=url + "/celeba/")
    assert len(requests(log)) == count
    pretrained.fetch("celeba", url=url + "/celeba/", force=True)
    assert len(requests(log)) == count + 3


def test_damaged_cache_entry_is_refused_and_force_repairs_it(release_folder, pictures, cache, tmp_path):
    image, mask = pictures
    path = pretrained.fetch("places2", folder=release_folder)
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))
    output = str(tmp_path / "filled.png")
    result = run_command("inpaint.py", "--checkpoint", "places2", "--image", image, "--mask", mask,
                         "--output", output)
    assert_refused(result, output, "damaged", "python tools/download_pretrained.py places2 --force")

    result = run_command("tools/download_pretrained.py", "places2", "--from", release_folder, "--force")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint("places2").path == path


def test_a_download_that_breaks_off_leaves_no_entry(mirror_folder, cache, tmp_path):
    log = str(tmp_path / "requests.log")
    with serving(mirror_folder, log, "--drop-after", "1000000") as url:
        result = run_command("tools/download_pretrained.py", "places2", "--url", url + "/places2/")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the download of ") and "broke off" in last and "--from DIR" in last, last
    assert "Traceback" not in result.stderr
    assert os.listdir(cache) == [".places2.lock"]          # no entry, no temporary folder


def test_no_network_is_one_line_naming_the_url_and_the_manual_route(pictures, cache, tmp_path, monkeypatch):
    image, mask = pictures
    url = f"http://127.0.0.1:{free_port()}"
    result = run_command("tools/download_pretrained.py", "imagenet", "--url", url)
    assert_refused(result, str(tmp_path / "none"), f"cannot download {url}/checkpoint.txt",
                   "https://drive.google.com/drive/folders/136APWSdPRAF7-XoS8sMBTLV-X3f-ogE0",
                   "python tools/download_pretrained.py imagenet --from DIR")
    assert entry_files(cache) == []

    monkeypatch.setenv("DEEPFILL_MIRROR", url)                  # first use through inpaint.py: the same line
    output = str(tmp_path / "filled.png")
    result = run_command("inpaint.py", "--checkpoint", "imagenet", "--image", image, "--mask", mask,
                         "--output", output)
    assert result.returncode == 2 and not os.path.exists(output)
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot download {url}/imagenet/")
    assert "Traceback" not in result.stderr


def test_unknown_names_list_the_known_ones(pictures, tmp_path):
    image, mask = pictures
    output = str(tmp_path / "filled.png")
    assert_refused(run_command("tools/download_pretrained.py", "places365"), output,
                   "unknown pretrained model 'places365'", "places2, celeba, celebahq, imagenet")
    assert_refused(run_command("inpaint.py", "--checkpoint", "places365", "--image", image, "--mask", mask,
                               "--output", output), output, "checkpoint not found: places365",
                   "places2, celeba, celebahq, imagenet")


def test_a_file_of_that_name_wins_over_the_pretrained_name(golden_checkpoint, tmp_path, monkeypatch):
    shutil.copy(golden_checkpoint, tmp_path / "places2")
    monkeypatch.chdir(tmp_path)
    assert load_checkpoint("places2").path == "places2"
    assert entry_files(os.environ["DEEPFILL_HOME"]) == []


def test_a_web_page_instead_of_the_files_is_named(mirror, cache):
    url, _ = mirror
    with pytest.raises(UserError, match=r"snap-0\.index is a web page.*quota.*--from DIR"):
        pretrained.fetch("places2", url=url + "/quota/")
    assert entry_files(cache) == []


def test_incomplete_folders_are_refused_before_converting(release_folder, cache, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(release_folder, partial)
    os.remove(partial / "snap-0.data-00000-of-00001")
    with pytest.raises(UserError, match="incomplete: snap-0.data-00000-of-00001 is missing"):
        pretrained.fetch("celebahq", folder=str(partial))
    with open(os.path.join(release_folder, "snap-0.data-00000-of-00001"), "rb") as handle:
        (partial / "snap-0.data-00000-of-00001").write_bytes(handle.read(5000))
    with pytest.raises(UserError, match="incomplete: .* has 5,000 bytes, its index needs"):
        pretrained.fetch("celebahq", folder=str(partial))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no TensorFlow checkpoint"):
        pretrained.fetch("celebahq", folder=str(tmp_path / "empty"))
    assert entry_files(cache) == []


def test_google_drive_folder_is_fetched_with_gdown(release_folder, cache, monkeypatch):
    """Up to the network call: the release's folder id goes to gdown, which writes the files as Drive
    names them (``checkpoint.txt``), nested in the folder's name as gdown may do."""
    import gdown
    calls = []

    def download_folder(id: str, output: str, quiet: bool) -> list[str]:  # noqa: A002 - gdown's name
        calls.append(id)
        assert output.startswith(os.path.join(cache, ".tmp-")) and not quiet
        shutil.copytree(release_folder, os.path.join(output, "release_celebahq_256"))
        return sorted(os.listdir(os.path.join(output, "release_celebahq_256")))

    monkeypatch.setattr(gdown, "download_folder", download_folder)
    assert load_checkpoint("celebahq").spec.source == "pretrained celebahq (official v1.0.0 release, CelebA-HQ)"
    assert calls == ["1lpluFXyWDxTY6wcjixQGWX8jxUUMlyBW"]
    assert entry_files(cache) == ["celebahq.pdparams", "celebahq.sha256"]
    with pytest.raises(UserError, match="hold DeepFill v1, but places2_v2"):     # the v2 folder ids go to gdown
        load_checkpoint("places2_v2")
    with pytest.raises(UserError, match="hold DeepFill v1, but celebahq_v2"):
        load_checkpoint("celebahq_v2")
    assert calls[1:] == ["1y7Irxm3HSHGvp546hZdAZwuNmhLUVcjO", "1uvcDgMer-4hgWlm6_G9xjvEQGP8neW15"]


def test_google_drive_failures_are_one_clear_error(release_folder, cache, monkeypatch):
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def over_quota(id: str, output: str, quiet: bool) -> list[str]:  # noqa: A002
        raise FileURLRetrievalError("Too many users have viewed or downloaded this file recently.\nMore text")

    monkeypatch.setattr(gdown, "download_folder", over_quota)
    with pytest.raises(UserError) as refused:
        pretrained.fetch("places2")
    message = str(refused.value)
    assert "\n" not in message and "Too many users" in message
    assert "https://drive.google.com/drive/folders/1M3AFy7x9DqXaI-fINSynW7FJSXYROfv-" in message

    def web_page(id: str, output: str, quiet: bool) -> list[str]:  # noqa: A002
        shutil.copytree(release_folder, output, dirs_exist_ok=True)
        with open(os.path.join(output, "snap-0.data-00000-of-00001"), "w") as handle:
            handle.write("\n<!DOCTYPE html><html>Google Drive can't scan this file for viruses</html>")
        return os.listdir(output)

    monkeypatch.setattr(gdown, "download_folder", web_page)
    with pytest.raises(UserError, match="snap-0.data-00000-of-00001 from https://drive.google.com/.* is a web "
                                        "page"):
        pretrained.fetch("places2")
    assert entry_files(cache) == []


def test_python_api(release_folder, golden):
    from PIL import Image

    from deepfill import Inpainter
    pretrained.fetch("places2", folder=release_folder)
    inpainter = Inpainter.from_pretrained("places2", device="cpu")
    assert inpainter.spec.channel_order == "BGR" and "places2" in repr(inpainter)
    image = np.round((golden["x"][0, 32:96, 32:96] + 1) * 127.5).astype(np.uint8)          # RGB, 64x64
    hole = np.zeros((64, 64), bool)
    hole[20:44, 12:40] = True
    completed = inpainter(image, hole)
    assert completed.dtype == np.uint8 and completed.shape == image.shape
    assert (completed[~hole] == image[~hole]).all() and not (completed[hole] == image[hole]).all()
    for same in (hole.astype(np.uint8) * 255, hole.astype(np.uint8), hole.astype(np.float32),
                 np.repeat(hole[:, :, None].astype(np.uint8) * 255, 3, axis=2)):
        np.testing.assert_array_equal(inpainter(image, same), completed)
    np.testing.assert_array_equal(inpainter(Image.fromarray(image), Image.fromarray(hole)), completed)

    other = np.zeros((64, 64), bool)
    other[4:16, 40:60] = True
    results = inpainter.batch([image, image[::-1].copy()], [hole, other])
    np.testing.assert_array_equal(results[0], completed)
    np.testing.assert_array_equal(results[1], inpainter(image[::-1].copy(), other))
    assert (results[1][~other] == image[::-1][~other]).all()

    with pytest.raises(UserError, match=r"image must be uint8 RGB .* float32 \(64, 64, 3\)"):
        inpainter(image.astype(np.float32), hole)
    with pytest.raises(UserError, match=r"mask 1 has shape \(10, 64\)"):
        inpainter.batch([image, image], [hole, hole[:10]])
    with pytest.raises(UserError, match="2 images but 1 masks"):
        inpainter.batch([image, image], [hole])


def test_concurrent_first_uses_fetch_once(mirror, cache, monkeypatch):
    """Every process of a multi-GPU run loads ``init_checkpoint=places2`` at the same moment."""
    url, log = mirror
    monkeypatch.setenv("DEEPFILL_MIRROR", url)
    env = {**os.environ, "PYTHONPATH": ROOT}
    before = len(requests(log))
    runs = [subprocess.Popen([sys.executable, "tools/download_pretrained.py", "celeba"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(requests(log)) - before == 3
    assert entry_files(cache) == ["celeba.pdparams", "celeba.sha256"]


def test_documented_python_example_runs_as_written(release_folder, pictures, tmp_path):
    """The documentation's Python API block, run as a script beside photo.png and mask.png (places2 already
    cached)."""
    blocks = [block for block in code_blocks(ROOT, "python") if "from deepfill import" in block]
    assert len(blocks) == 1 and "Inpainter.from_pretrained" in blocks[0]
    pretrained.fetch("places2", folder=release_folder)
    for path in pictures:
        shutil.copy(path, tmp_path)
    (tmp_path / "example.py").write_text(blocks[0] + "assert [m.shape for m in mirrored] == [image.shape] * 2\n")
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    filled, original = cv2.imread(str(tmp_path / "filled.png")), cv2.imread(pictures[0])
    hole = cv2.imread(pictures[1], cv2.IMREAD_GRAYSCALE) > 127
    assert filled.shape == original.shape and (filled[~hole] == original[~hole]).all()


def test_an_unusable_cache_folder_is_named(release_folder, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("DEEPFILL_HOME", str(tmp_path / "a_file"))
    with pytest.raises(UserError, match=r"cannot fetch places2: .*a_file.*set DEEPFILL_HOME"):
        pretrained.fetch("places2", folder=release_folder)
