"""tools/convert_tf_checkpoint.py and the TF bundle reader: what converts, and what is refused."""
from __future__ import annotations

import os
import shutil

import numpy as np
import paddle
import pytest

from tests.conftest import assert_refused, run_command
from tests.golden_data import TF_READER_DIR
from tests.tf_bundle_writer import write_bundle
from models.official import dense_kernel
from utils.cli import UserError
from utils.tf_bundle import read_index, read_tensors, resolve_prefix

def test_converted_checkpoint_records_bgr_source_and_drops_optimizer(golden_checkpoint):
    payload = paddle.load(golden_checkpoint, return_numpy=True)
    spec = payload["spec"]
    assert spec["channel_order"] == "BGR" and spec["cnum"] == 32
    assert spec["source"].endswith(os.path.join("tf_checkpoint", "snap-0"))
    assert (spec["hole_size"], spec["image_size"]) == (64, 128)          # the critics' input sizes
    names = [n for part in ("generator", "critic_local", "critic_global") for n in payload[part]]
    assert len(names) == 84 + 10 + 10
    assert not any("Adam" in name or "step" in name for name in names)


def test_reader_finds_every_tensor_and_skips_nothing(golden_tf_checkpoint):
    shards, entries = read_index(resolve_prefix(golden_tf_checkpoint))
    assert shards == 1 and len(entries) == 111
    assert entries["inpaint_net/conv1/kernel"].shape == (5, 5, 5, 32)
    assert read_tensors(resolve_prefix(golden_tf_checkpoint), ["global_step"])["global_step"] == 123456


def test_reader_reads_a_real_tf_checkpoint_exactly():
    """A bundle written by TensorFlow itself: float32/float64/int32/int64, an empty tensor, scalars, slots."""
    with np.load(os.path.join(TF_READER_DIR, "expected.npz")) as data:
        expected = {key.replace("|", "/"): data[key] for key in data.files}
    shards, entries = read_index(resolve_prefix(TF_READER_DIR))
    assert shards == 1 and set(entries) == set(expected)
    read = read_tensors(resolve_prefix(TF_READER_DIR))
    assert set(read) == set(expected)
    for name, value in expected.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape, name
        assert read[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("form", ["folder", "prefix", "index"])
def test_checkpoint_may_be_named_three_ways(golden_tf_checkpoint, form):
    prefix = os.path.join(golden_tf_checkpoint, "snap-0")
    given = {"folder": golden_tf_checkpoint, "prefix": prefix, "index": prefix + ".index"}[form]
    assert resolve_prefix(given) == prefix


def test_reader_round_trips_an_independently_written_bundle(tmp_path):
    tensors = {"a/kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
               "b": np.array([7, -3], dtype=np.int64)}
    write_bundle(str(tmp_path / "model"), tensors)
    read = read_tensors(str(tmp_path / "model"))
    assert set(read) == set(tensors)
    for name, value in tensors.items():
        assert read[name].dtype == value.dtype and (read[name] == value).all()


def test_dense_kernel_reorders_nhwc_features_to_nchw():
    rng = np.random.default_rng(0)
    features = rng.random((2, 4, 4, 8), dtype=np.float32)          # N, H, W, C as TF holds them
    kernel = rng.random((4 * 4 * 8, 1), dtype=np.float32)
    tf_score = features.reshape(2, -1) @ kernel
    ours = features.transpose(0, 3, 1, 2).reshape(2, -1) @ dense_kernel(kernel, 8)
    np.testing.assert_allclose(ours, tf_score, rtol=1e-5)


def test_convert_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "empty"), out),
                   out, "no TensorFlow checkpoint")


def test_convert_truncated_index_is_refused(golden_tf_checkpoint, tmp_path):
    with open(os.path.join(golden_tf_checkpoint, "snap-0.index"), "rb") as handle:
        index = handle.read()
    (tmp_path / "snap-0.index").write_bytes(index[: len(index) // 2])
    os.symlink(os.path.join(golden_tf_checkpoint, "snap-0.data-00000-of-00001"),
               tmp_path / "snap-0.data-00000-of-00001")
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "snap-0"), out),
                   out, "not a readable TensorFlow checkpoint index")


def test_convert_missing_path_and_junk_are_refused(tmp_path):
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "nope"), out), out,
                   "not found")
    (tmp_path / "junk.index").write_bytes(os.urandom(300))
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "junk"), out), out,
                   "not a readable")


def test_convert_refuses_a_checkpoint_without_generator(tmp_path):
    write_bundle(str(tmp_path / "snap-0"), {"discriminator/dout_local_fc/bias": np.zeros(1, np.float32),
                                            "global_step": np.array(5, dtype=np.int64)})
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "snap-0"), out), out,
                   "no DeepFill generator")


def test_convert_refuses_an_incomplete_generator(golden_tf_checkpoint, tmp_path):
    tensors = read_tensors(resolve_prefix(golden_tf_checkpoint))
    del tensors["inpaint_net/pmconv9/kernel"]
    write_bundle(str(tmp_path / "snap-0"), {k: v for k, v in tensors.items() if v.dtype.kind == "f"})
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "snap-0"), out), out,
                   "inpaint_net/pmconv9/kernel")


def test_truncated_data_file_is_refused(golden_tf_checkpoint, tmp_path):
    shutil.copy(os.path.join(golden_tf_checkpoint, "snap-0.index"), tmp_path)
    with open(os.path.join(golden_tf_checkpoint, "snap-0.data-00000-of-00001"), "rb") as handle:
        (tmp_path / "snap-0.data-00000-of-00001").write_bytes(handle.read(1000))
    with pytest.raises(UserError, match="truncated"):
        read_tensors(str(tmp_path / "snap-0"))
