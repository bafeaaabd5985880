"""What every layer shares (settings, files, devices, picture input and output, errors).

The code lives in ``deepfill.utils``; this folder keeps the names the card gives.
"""
from deepfill.utils.config import Config, load_config
from deepfill.utils.errors import UserError

__all__ = ["Config", "load_config", "UserError"]
