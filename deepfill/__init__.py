"""DeepFill v1 from Python: fill holes in pictures held as numpy arrays.

    from deepfill import Inpainter
    inpainter = Inpainter.from_pretrained("places2")          # or a .pdparams path
    completed = inpainter(image, mask)                         # uint8 RGB H×W×3; mask True/white = hole
    results = inpainter.batch([image_a, image_b], [mask_a, mask_b])

The same models and the same computation as ``inpaint.py``; a pretrained name is fetched into the cache
folder on first use (``models.pretrained``). Mistakes (a wrong shape, a damaged checkpoint, no network)
raise ``deepfill.UserError`` with a one-line message.
"""
from utils.environment import prepare_paddle

prepare_paddle()      # before Paddle's first import, as every entry point does

from deepfill.api import Inpainter  # noqa: E402
from utils.errors import UserError  # noqa: E402

__all__ = ["Inpainter", "UserError"]
