"""Command-line plumbing shared by every entry point: a user mistake (``UserError``) is one line on stderr
and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from deepfill.utils.config import CPU_PRECISIONS, settings
from deepfill.utils.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are reported like every other user mistake: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def add_cpu_precision(parser: argparse.ArgumentParser) -> None:
    """``--cpu-precision``: the inference commands' form of the ``cpu_precision`` setting."""
    meaning = next(setting for setting in settings() if setting.name == "cpu_precision").metadata["help"]
    parser.add_argument("--cpu-precision", default="float32", choices=CPU_PRECISIONS, help=meaning)


def run(main: Callable[[], None]) -> None:
    """Run a command's ``main``, turning ``UserError`` into a one-line message and exit code 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
