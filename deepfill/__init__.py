"""DeepFill (v1, Yu et al., CVPR 2018; and v2) in PaddlePaddle: the library under one name.

From Python, fill holes in pictures held as numpy arrays:

    from deepfill import Inpainter
    inpainter = Inpainter.from_pretrained("places2")          # or a .pdparams path
    completed = inpainter(image, mask)                         # uint8 RGB H×W×3; mask True/white = hole
    results = inpainter.batch([image_a, image_b], [mask_a, mask_b])

The same models and the same computation as ``inpaint.py``; a pretrained name is fetched into the cache
folder on first use (``deepfill.models.pretrained``). Mistakes (a wrong shape, a damaged checkpoint, no
network) raise ``deepfill.UserError`` with a one-line message.

The rooms of the library (``deepfill.utils``, ``models``, ``data``, ``inpainting``, ``tester``,
``evaluation``, ``training``) and what each may import are in docs/architecture.md. ``Inpainter`` is loaded
on first use, so that importing one room (``deepfill.models.generator``) does not load the inference
stack above it.
"""
from deepfill.utils.environment import prepare_paddle

prepare_paddle()      # before Paddle's first import, as every entry point does

__all__ = ["Inpainter", "UserError"]


def __getattr__(name: str) -> object:
    if name == "Inpainter":
        from deepfill.api import Inpainter
        return Inpainter
    if name == "UserError":
        from deepfill.utils.errors import UserError
        return UserError
    raise AttributeError(f"module 'deepfill' has no attribute {name!r}")
