"""Command-line plumbing shared by every entry point: a user mistake (``UserError``) is one line on stderr
and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from deepfill.utils.config import CPU_PRECISIONS
from deepfill.utils.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are reported like every other user mistake: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def add_cpu_precision(parser: argparse.ArgumentParser) -> None:
    """``--cpu-precision``: the inference commands' form of the ``cpu_precision`` setting."""
    parser.add_argument("--cpu-precision", default="float32", choices=CPU_PRECISIONS,
                        help="what oneDNN's convolutions multiply in on the CPU: float32 (default, the official "
                             "arithmetic) or bfloat16 (float32 sums; about 2x faster convolutions on a processor "
                             "with AVX512_BF16 or AMX, refused on others; fills within about a grey level)")


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
