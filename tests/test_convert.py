"""tools/convert_tf_checkpoint.py and the TF bundle reader: what converts, and what is refused."""
from __future__ import annotations

import os
import shutil

import numpy as np
import paddle
import pytest

from deepfill.data.masks import Box
from deepfill.models.checkpoint import load_checkpoint
from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.official import dense_kernel
from deepfill.models.tf_convert import convert
from tests import golden_v2_data
from tests.conftest import assert_refused, nchw, run_command
from tests.golden_data import TF_READER_DIR, golden_bundle_tensors, load_switches, mask_channel_kernel
from tests.test_train_step import LOSS_NAMES, LOSS_TOLERANCE
from tests.tf_bundle_writer import write_bundle, write_checkpoint_state
from deepfill.training.algorithm import Batch, Networks, critic_losses
from deepfill.utils.cli import UserError
from deepfill.utils.config import load_config
from deepfill.utils.tf_bundle import read_index, read_tensors, resolve_prefix

LOCAL, GLOBAL = "discriminator/discriminator_local", "discriminator/discriminator_global"


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


def convert_bundle(folder, tensors: dict[str, np.ndarray], capsys, name: str = "snap-0"):
    """Write ``tensors`` as a TF bundle in ``folder`` (with a ``checkpoint`` file naming it), convert it in
    process and return the record, the weights and the converter's note lines."""
    os.makedirs(folder, exist_ok=True)
    write_bundle(os.path.join(folder, name), tensors)
    write_checkpoint_state(str(folder), name)
    capsys.readouterr()
    spec, weights = convert(str(folder))
    err = capsys.readouterr().err.splitlines()
    return spec, weights, [line for line in err if line.startswith("note:")]


@pytest.fixture(scope="module")
def official_generator(golden_tf_checkpoint) -> dict[str, np.ndarray]:
    """The generator as the golden bundle, whose critics are the official ones, converts."""
    return convert(golden_tf_checkpoint)[1]["generator"]


def assert_same_generator(weights, official_generator) -> None:
    assert set(weights["generator"]) == set(official_generator)
    for name, value in official_generator.items():
        assert weights["generator"][name].tobytes() == value.tobytes(), name


def with_global_mask_channel(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The golden bundle as the official graph with GAN_WITH_MASK holds it: the global critic's conv1
    kernel gets the mask channel after the image's (the slice tests/golden/switches.npz was computed with)."""
    kernel = tensors[f"{GLOBAL}/conv1/kernel"]
    return {**tensors, f"{GLOBAL}/conv1/kernel": np.concatenate([kernel, mask_channel_kernel()], axis=2)}


def test_a_gan_with_mask_global_critic_is_kept_recorded_and_scores_as_the_official_one(tmp_path, capsys,
                                                                                      train_step_golden):
    """4 input channels on the global critic is the official GAN_WITH_MASK layout: both critics are kept,
    the record says gan_with_mask, and the converted critics give the official step's critic losses."""
    spec, weights, notes = convert_bundle(tmp_path / "masked", with_global_mask_channel(golden_bundle_tensors()),
                                          capsys)
    assert notes == []
    assert spec.gan_with_mask and (spec.image_size, spec.hole_size) == (128, 64)
    assert weights["critic_global"]["convs.conv1.weight"].shape == (64, 4, 5, 5)
    np.testing.assert_array_equal(weights["critic_global"]["convs.conv1.weight"][:, 3:],
                                  mask_channel_kernel().transpose(3, 2, 0, 1))
    out = str(tmp_path / "masked.pdparams")
    save_checkpoint(out, spec, weights)
    checkpoint = load_checkpoint(out)
    assert checkpoint.build_critics()[1].mask_channel

    base, official = train_step_golden, load_switches()["gan_with_mask=true"]
    images = nchw(base["x"])
    count, size = images.shape[0], images.shape[2]
    top, left, height, width = (int(v) for v in base["local_box"])
    config = load_config(None, [f"image_size={size}", f"hole_size={height}", "cnum=32", "gan_with_mask=true"])
    nets = Networks(config)
    nets.generator.set_state_dict(checkpoint.generator)
    nets.local_critic.set_state_dict(checkpoint.critics["critic_local"])
    nets.global_critic.set_state_dict(checkpoint.critics["critic_global"])
    batch = Batch(images, nchw(np.repeat(base["mask"], count, axis=0)), [Box(top, left, height, width)] * count)
    alphas = paddle.to_tensor(np.stack([base["alpha_local"], base["alpha_global"]])
                              .reshape(2, count, 1, 1, 1).astype(np.float32))
    losses = critic_losses(nets, batch, alphas, config)
    for name in ("d_loss_global", "penalty_global", "d_loss_local", "penalty_local", "d_loss"):
        expected, ours = float(official[f"loss/{name}"]), float(losses[LOSS_NAMES[name]])
        assert abs(ours - expected) <= LOSS_TOLERANCE * abs(expected), f"{name}: {ours} vs {expected}"


def narrower_local(tensors):
    """A local critic whose last conv has 256 filters instead of 512 (its dense layer reads 256 channels)."""
    rng = np.random.default_rng(1)
    return {**tensors, f"{LOCAL}/conv4/kernel": rng.standard_normal((5, 5, 256, 256)).astype(np.float32),
            f"{LOCAL}/conv4/bias": np.zeros(256, np.float32),
            "discriminator/dout_local_fc/kernel": np.zeros((4 * 4 * 256, 1), np.float32)}


def input_channels(kernel: str, channels: int):
    def change(tensors):
        old = tensors[kernel]
        return {**tensors, kernel: np.zeros((*old.shape[:2], channels, old.shape[3]), np.float32)}
    return change


def both_masked(tensors):
    """GAN_WITH_MASK's 4 channels on the local critic too (not the official layout), as in issue 27's error."""
    return input_channels(f"{LOCAL}/conv1/kernel", 4)(with_global_mask_channel(tensors))


def without(name):
    return lambda tensors: {k: v for k, v in tensors.items() if k != name}


def extra(name, shape=(3,)):
    return lambda tensors: {**tensors, name: np.zeros(shape, np.float32)}


CRITICS_THAT_DO_NOT_FIT = {
    "narrower_local": (narrower_local, f"{LOCAL}/conv4/kernel has TF shape (5, 5, 256, 256), "
                                       "expected (5, 5, 256, 512)"),
    "local_with_mask_channel": (input_channels(f"{LOCAL}/conv1/kernel", 4),
                                f"{LOCAL}/conv1/kernel has TF shape (5, 5, 4, 64), expected (5, 5, 3, 64)"),
    "both_with_mask_channel": (both_masked, f"{LOCAL}/conv1/kernel has TF shape (5, 5, 4, 64), "
                                            "expected (5, 5, 3, 64)"),
    "global_with_5_channels": (input_channels(f"{GLOBAL}/conv1/kernel", 5),
                               f"{GLOBAL}/conv1/kernel has TF shape (5, 5, 5, 64), expected (5, 5, 3, 64)"),
    "dense_not_square": (lambda t: {**t, "discriminator/dout_global_fc/kernel": np.zeros((16000, 1), np.float32)},
                         "discriminator/dout_global_fc/kernel has TF shape (16000, 1), expected (12544, 1)"),
    "extra_layer": (extra(f"{LOCAL}/conv5/kernel", (5, 5, 512, 512)), f"also holds {LOCAL}/conv5/kernel"),
    "incomplete": (without(f"{GLOBAL}/conv3/bias"), f"lacks {GLOBAL}/conv3/bias"),
}


@pytest.mark.parametrize("case", sorted(CRITICS_THAT_DO_NOT_FIT))
def test_a_critic_that_fits_no_layout_is_left_out_and_the_generator_converts(case, tmp_path, capsys,
                                                                            official_generator):
    change, said = CRITICS_THAT_DO_NOT_FIT[case]
    spec, weights, notes = convert_bundle(tmp_path / case, change(golden_bundle_tensors()), capsys)
    assert_same_generator(weights, official_generator)
    assert set(weights) == {"generator"}
    assert not spec.gan_with_mask and (spec.image_size, spec.hole_size) == (256, 128)   # the release's
    assert len(notes) == 2 and said in notes[0] and "left out" in notes[0], notes
    assert "only one critic is usable" in notes[1]


def test_the_converter_names_a_critic_it_leaves_out_in_tf_layout(tmp_path):
    """Issue 27's bundle through the command: converted, exit 0, the critic named in TF's shapes."""
    folder = tmp_path / "release"
    folder.mkdir()
    write_bundle(str(folder / "snap-0"), both_masked(golden_bundle_tensors()))
    write_checkpoint_state(str(folder), "snap-0")
    out = str(tmp_path / "out.pdparams")
    result = run_command("tools/convert_tf_checkpoint.py", str(folder), out)
    assert result.returncode == 0, result.stderr
    assert "(5, 5, 4, 64), expected (5, 5, 3, 64)" in result.stderr and "(64, 4, 5, 5)" not in result.stderr
    assert "error" not in result.stderr
    assert set(paddle.load(out, return_numpy=True)) >= {"generator", "spec"}
    assert load_checkpoint(out).critics == {}


def test_unrecognised_critic_tensors_are_named_in_one_line(tmp_path, capsys, official_generator):
    tensors = golden_bundle_tensors()
    heads = {f"discriminator/aux_head/dense{i}/kernel": np.zeros((4, 4), np.float32) for i in range(30)}
    spec, weights, notes = convert_bundle(tmp_path / "aux", {**tensors, **heads}, capsys)
    assert_same_generator(weights, official_generator)
    assert set(weights) == {"generator", "critic_local", "critic_global"}
    assert len(notes) == 1 and notes[0].count("discriminator/") == 1, notes
    assert "30 tensor(s)" in notes[0] and "discriminator/aux_head/dense0/kernel and 29 more" in notes[0]


def test_a_generator_of_other_shapes_is_refused_in_tf_layout(tmp_path):
    tensors = input_channels("inpaint_net/conv1/kernel", 4)(golden_bundle_tensors())
    write_bundle(str(tmp_path / "snap-0"), tensors)
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(tmp_path / "snap-0"), out), out,
                   "inpaint_net/conv1/kernel has TF shape (5, 5, 4, 32), expected (5, 5, 5, 32)")


def test_a_v2_critic_of_other_shapes_is_left_out_and_the_generator_converts(tmp_path, capsys):
    tensors = {**golden_v2_data.rebuild_weights(), **golden_v2_data.distractors()}
    _, official, _ = convert_bundle(tmp_path / "official", tensors, capsys)
    kernel = "discriminator/sn_patch_gan/conv3/kernel"
    narrower = {**tensors, kernel: np.zeros((5, 5, 128, 128), np.float32)}
    spec, weights, notes = convert_bundle(tmp_path / "narrower", narrower, capsys)
    assert spec.version == 2 and set(weights) == {"generator"}
    assert_same_generator(weights, official["generator"])
    assert len(notes) == 1 and f"{kernel} has TF shape (5, 5, 128, 128), expected (5, 5, 128, 256)" in notes[0]


def test_a_checkpoint_file_naming_a_missing_bundle_falls_back_to_the_only_one(tmp_path, capsys,
                                                                              official_generator):
    folder = tmp_path / "moved"
    folder.mkdir()
    write_bundle(str(folder / "snap-7"), golden_bundle_tensors())
    write_checkpoint_state(str(folder), "/home/someone/train/snap-9000")
    capsys.readouterr()
    spec, weights = convert(str(folder))
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert spec.source == str(folder / "snap-7")
    assert_same_generator(weights, official_generator)
    assert len(notes) == 1 and "/home/someone/train/snap-9000" in notes[0] and str(folder / "snap-7") in notes[0]


def test_a_checkpoint_file_naming_a_missing_bundle_among_several_is_refused(tmp_path):
    folder = tmp_path / "several"
    folder.mkdir()
    for name in ("snap-1", "snap-2"):
        write_bundle(str(folder / name), {"inpaint_net/conv1/bias": np.zeros(32, np.float32)})
    write_checkpoint_state(str(folder), "snap-3")
    out = str(tmp_path / "out.pdparams")
    assert_refused(run_command("tools/convert_tf_checkpoint.py", str(folder), out), out,
                   "names snap-3", "snap-1.index, snap-2.index")
