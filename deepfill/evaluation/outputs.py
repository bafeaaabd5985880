"""The files an evaluation writes besides its pictures: checked before any work (an hour of evaluation
must not end in "cannot write"), and the JSON report written whole or not at all."""
from __future__ import annotations

import json
import os

from deepfill.utils.cli import UserError
from deepfill.utils.files import atomic_path, check_writable_file, check_writable_folder


def check_outputs(report: str | None, save_dir: str | None) -> None:
    """Refuse outputs that could not be written (a missing or read-only folder, a folder where the report
    should go, a file where the pictures' folder should be)."""
    if report:
        check_writable_file(report, "--report")
    if save_dir:
        if not os.path.isdir(os.path.dirname(os.path.abspath(save_dir))):
            raise UserError(f"cannot write {save_dir}: its parent folder does not exist")
        check_writable_folder(save_dir, "--save-dir")


def write_report(path: str, content: dict) -> None:
    """``content`` as strict JSON (refusing nan and inf: ``report.finite_or_none`` first), atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2, allow_nan=False)
