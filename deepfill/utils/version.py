"""The project's version, for what it writes into files other programs read (exported models)."""
from __future__ import annotations

import os
import re
from importlib import metadata

DISTRIBUTION = "deepfill-paddle"


def project_version() -> str:
    """The installed distribution's version; from a checkout that is not installed, pyproject.toml's."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    pyproject = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as handle:
            found = re.search(r'^version\s*=\s*"([^"]+)"', handle.read(), re.M)
    except OSError:
        found = None
    return found.group(1) if found else "unknown"
