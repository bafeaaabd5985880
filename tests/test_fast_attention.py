"""The optimised inference path computes what the straightforward one does.

``tests/reference_attention.py`` is the contextual attention written as directly as the official graph (the
whole score matrix at once); the chunked, hole-skipping layer in ``deepfill/models/attention.py`` must equal it, on
each backend of ``deepfill.models.kernels``, and the hole-only generator (``deepfill.models.hole_reach``) must give the full
generator's pixels inside the hole.
"""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from deepfill.models.attention import contextual_attention
from deepfill.models.hole_reach import coarse_decoder, fill_holes, hole_reach
from deepfill.models.generator import InpaintGenerator
from deepfill.models.layers import GenConv
from tests.reference_attention import contextual_attention as reference_attention

TOLERANCE = 1e-5
ATTENTION_TOLERANCE = 5e-5   # the layer divides scores, not patches, by the norms: float32 rounding, ×10 by the softmax scale


def _case(seed: int, batch: int, height: int, width: int, holes: bool = True
          ) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((batch, 8, height, width)).astype(np.float32)
    b = rng.standard_normal((batch, 8, height, width)).astype(np.float32)
    mask = np.zeros((batch, 1, height, width), np.float32)
    if holes:
        for i in range(batch):
            top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
            mask[i, :, top:top + height // 3 + 2 * i, left:left + width // 3] = 1
    return paddle.to_tensor(f), paddle.to_tensor(b), paddle.to_tensor(mask)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("per_sample_mask", [False, True])
@pytest.mark.parametrize("chunk_elements", [2 ** 24, 300])
def test_chunked_attention_equals_the_straightforward_one(backend, fuse, per_sample_mask, chunk_elements):
    f, b, mask = _case(0, 3, 16, 24)
    expected, expected_offsets = reference_attention(f, b, mask, fuse=fuse, per_sample_mask=per_sample_mask)
    got, offsets = contextual_attention(f, b, mask, fuse=fuse, per_sample_mask=per_sample_mask,
                                        chunk_elements=chunk_elements)
    assert np.abs(got.numpy() - expected.numpy()).max() < ATTENTION_TOLERANCE
    assert (offsets.numpy() == expected_offsets.numpy()).all()


@pytest.mark.parametrize("shape,holes", [((2, 32, 32), False), ((1, 40, 24), True), ((2, 8, 8), True)])
def test_chunked_attention_at_other_shapes(backend, shape, holes):
    f, b, mask = _case(1, *shape, holes=holes)
    expected, expected_offsets = reference_attention(f, b, mask, per_sample_mask=True)
    got, offsets = contextual_attention(f, b, mask, per_sample_mask=True, chunk_elements=100)
    assert np.abs(got.numpy() - expected.numpy()).max() < ATTENTION_TOLERANCE
    assert (offsets.numpy() == expected_offsets.numpy()).all()


@pytest.mark.parametrize("fuse_k", [3, 2, 5])
@pytest.mark.parametrize("chunk_elements", [2 ** 24, 400, 60])
def test_tiles_around_a_big_hole_at_the_corner(backend, fuse_k, chunk_elements):
    """A hole over half the picture, at its corner: the background is scored in tiles around the hole's
    inside, foreground and background tiles meet the picture's edges (where the column-major pass wraps
    into the next column), small budgets make many tiles; the result is still the straightforward one."""
    f, b, _ = _case(4, 2, 20, 28)
    mask = np.zeros((2, 1, 20, 28), np.float32)
    mask[0, :, :14, :18] = 1
    mask[1, :, 6:, 10:] = 1
    for per_sample_mask in (False, True):
        expected, expected_offsets = reference_attention(f, b, paddle.to_tensor(mask), fuse_k=fuse_k,
                                                         per_sample_mask=per_sample_mask)
        got, offsets = contextual_attention(f, b, paddle.to_tensor(mask), fuse_k=fuse_k,
                                            per_sample_mask=per_sample_mask, chunk_elements=chunk_elements)
        assert np.abs(got.numpy() - expected.numpy()).max() < ATTENTION_TOLERANCE
        assert (offsets.numpy() == expected_offsets.numpy()).all()
    got, _ = contextual_attention(f, f, paddle.to_tensor(mask), fuse_k=fuse_k, chunk_elements=chunk_elements)
    expected, _ = reference_attention(f, f, paddle.to_tensor(mask), fuse_k=fuse_k)
    assert np.abs(got.numpy() - expected.numpy()).max() < ATTENTION_TOLERANCE     # f against itself


@pytest.mark.parametrize("chunk_elements", [2 ** 24, 300])
def test_needed_positions_alone(backend, chunk_elements):
    """With ``needed``, the positions asked for get what the whole layer gives them, the others nothing:
    every pixel whose pasted patches all come from needed positions is the whole layer's, every pixel
    no needed position reaches is 0, and so is every offset not asked for."""
    f, b, mask = _case(5, 1, 24, 32)
    needed = np.random.default_rng(5).random((12, 16)) < 0.4
    whole, whole_offsets = contextual_attention(f, b, mask)
    part, offsets = contextual_attention(f, b, mask, needed=needed, chunk_elements=chunk_elements)
    covering = np.zeros((24, 32, 12, 16), bool)         # pixel → the positions whose 4×4 patch covers it
    for y in range(12):
        for x in range(16):
            covering[max(2 * y - 1, 0):2 * y + 3, max(2 * x - 1, 0):2 * x + 3, y, x] = True
    only_needed = (covering <= needed).all(axis=(2, 3))
    none_needed = ~(covering & needed).any(axis=(2, 3))
    assert only_needed.any() and none_needed.any()
    assert np.abs(part.numpy() - whole.numpy())[..., only_needed].max() < 1e-5
    assert np.abs(part.numpy()[..., none_needed]).max() == 0
    assert (offsets.numpy() == np.where(needed, whole_offsets.numpy(), 0)).all()


def test_attention_with_no_usable_background_pastes_nothing(backend):
    f, b, _ = _case(2, 1, 16, 16)
    everything = paddle.ones([1, 1, 16, 16])
    expected, _ = reference_attention(f, b, everything)
    got, offsets = contextual_attention(f, b, everything)
    assert np.abs(expected.numpy()).max() == 0 and np.abs(got.numpy()).max() == 0
    assert offsets.shape == [1, 2, 8, 8]


@pytest.mark.parametrize("chunk_elements", [200, 2 ** 24])
def test_chunked_attention_gradients_equal_the_straightforward_ones(backend, chunk_elements):
    """Chunk by chunk, and the whole map pasted at once (``kernels.paste``, where it fits one chunk)."""
    f, b, mask = _case(3, 2, 16, 16)
    grads = []
    for layer, options in ((reference_attention, {}), (contextual_attention, {"chunk_elements": chunk_elements})):
        f_, b_ = f.clone(), b.clone()
        f_.stop_gradient = b_.stop_gradient = False
        y, _ = layer(f_, b_, mask, per_sample_mask=True, **options)
        (y * y).sum().backward()
        grads.append((f_.grad.numpy(), b_.grad.numpy()))
    for expected, got in zip(*grads):
        assert np.abs(got - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def _generator_case(size: int, boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size)
    mask = np.zeros((1, 1, size, size), np.float32)
    for top, left, height, width in boxes:
        mask[..., top:top + height, left:left + width] = 1
    x = rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32) * (1 - mask)
    return x, mask


@pytest.fixture(scope="module")
def generator():
    paddle.seed(7)
    model = InpaintGenerator(cnum=8)
    model.eval()
    return model


HOLES = [(128, [(40, 44, 16, 20)]), (160, [(0, 0, 12, 160), (120, 120, 30, 20)])]


@pytest.mark.parametrize("size,boxes", HOLES)
def test_hole_only_generator_gives_the_same_hole(generator, size, boxes):
    """Skipping attention positions that cannot reach the hole leaves every hole pixel unchanged; the
    receptive-field trace is tight enough to skip most positions for a small hole."""
    x, mask = _generator_case(size, boxes)
    with paddle.no_grad():
        _, full, _ = generator(paddle.to_tensor(x), paddle.to_tensor(mask))
        _, partial, _ = generator(paddle.to_tensor(x), paddle.to_tensor(mask), hole_reach(generator.refine, mask))
    hole = mask[0, 0] > 0.5
    difference = np.abs(full.numpy() - partial.numpy())[0].max(axis=0)
    assert difference[hole].max() < TOLERANCE
    assert difference[~hole].max() > 0.01    # positions far from the hole really were skipped


@pytest.mark.parametrize("size,boxes,batch", [(128, [(40, 44, 16, 20)], 1), (160, [(0, 0, 12, 160), (120, 120, 30, 20)], 1),
                                              (96, [(80, 8, 16, 40)], 2), (64, [(0, 0, 64, 64)], 1)])
def test_fill_holes_gives_the_same_hole(generator, size, boxes, batch, backend):
    """The critic steps' and inference's pass, which runs the decoders on the holes' window alone, gives
    every hole pixel of the full generator; at a picture's edge, for two holes far apart, for a batch
    (one hole per image), and when the hole is the whole picture."""
    x, mask = _generator_case(size, boxes)
    if batch > 1:
        x = np.concatenate([x, x[:, :, ::-1].copy()])
        mask = np.concatenate([mask, mask[:, :, ::-1].copy()])
    with paddle.no_grad():
        _, full, full_offsets = generator(paddle.to_tensor(x), paddle.to_tensor(mask))
        filled, offsets = fill_holes(generator, paddle.to_tensor(x), paddle.to_tensor(mask))
    hole = mask[:, 0] > 0.5
    assert filled.shape == full.shape
    assert np.abs(full.numpy() - filled.numpy()).max(axis=1)[hole].max() < TOLERANCE
    if size == 128:     # a small hole: most of the picture lies outside its window and is not computed
        assert (filled.numpy()[0] == 0).all(axis=0).mean() > 0.5


def test_the_coarse_decoder_starts_after_the_last_dilated_conv():
    """Found from the layers' strides and dilations, not their names: a dilated conv put in the decoder
    moves its start after it."""
    model = InpaintGenerator(cnum=8)
    front, decoder = coarse_decoder(model.coarse)
    assert front[-1][0] == "coarse.body.conv10_atrous" and decoder[0][0] == "coarse.body.conv11"
    model.coarse.body.conv12 = GenConv(32, 32, 3, dilation=2)
    assert coarse_decoder(model.coarse)[1][0][0] == "coarse.body.conv13_upsample"


@pytest.mark.parametrize("where,layer,words", [
    ("coarse.body.conv14", lambda: paddle.nn.Identity(), "Identity"),
    ("refine.merge.allconv12", lambda: GenConv(32, 32, 3, stride=2), "GenConv, stride 2"),
    ("refine.attention_decoder.pmconv9", lambda: paddle.nn.ReLU(), "ReLU")])
def test_fill_holes_refuses_a_layer_it_cannot_bound(where, layer, words):
    """A layer on the hole's window whose receptive field is unknown is refused by name, before any work."""
    model = InpaintGenerator(cnum=8)
    *path, name = where.split(".")
    owner = model
    for part in path:
        owner = getattr(owner, part)
    setattr(owner, name, layer())
    x, mask = _generator_case(64, [(8, 8, 16, 16)])
    with pytest.raises(TypeError, match=rf"{where} \({words}\)"):
        fill_holes(model, paddle.to_tensor(x), paddle.to_tensor(mask))


def test_hole_reach_covers_exactly_what_matters(generator):
    """Dropping the outermost ring of the traced region changes hole pixels: the trace is not loose."""
    x, mask = _generator_case(*HOLES[0])
    needed = hole_reach(generator.refine, mask[0, 0] > 0.5)
    assert 0 < needed.mean() < 0.8
    inner = needed.copy()
    inner[np.argwhere(needed).max(axis=0)[0], :] = False     # the last needed row
    features = paddle.to_tensor(np.random.default_rng(0).standard_normal((1, 32, 32, 32)).astype(np.float32))
    with paddle.no_grad():
        hallucinated, _ = generator.refine.encode(paddle.to_tensor(x), paddle.to_tensor(mask))
        from deepfill.models.layers import resize_nearest
        small = resize_nearest(paddle.to_tensor(mask), 32, 32)
        outputs = [generator.refine.decode(hallucinated, contextual_attention(features, features, small,
                                                                               needed=region)[0]).numpy()
                   for region in (needed, inner)]
    assert np.abs(outputs[0] - outputs[1])[0].max(axis=0)[mask[0, 0] > 0.5].max() > 1e-6

