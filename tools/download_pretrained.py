"""Fetch an official pretrained DeepFill v1 or v2 model by name, convert it and keep it in the cache folder.

    python tools/download_pretrained.py NAME [--from DIR] [--url URL] [--force]

NAME is places2, celeba, celebahq or imagenet (DeepFill v1, the official v1.0.0 release) or places2_v2 or
celebahq_v2 (DeepFill v2, the official v2.0.0 release for free-form holes; all 256x256). The release folder
comes from Google Drive (with gdown), from a plain HTTP(S) folder (--url, or $DEEPFILL_MIRROR/NAME/), or
from a folder you downloaded by hand (--from). The result is $DEEPFILL_HOME/NAME.pdparams (default
~/.cache/deepfill) with its sha256 in NAME.sha256; afterwards `--checkpoint NAME` works in inpaint.py,
test.py and training (init_checkpoint=NAME), and it is fetched the same way on first use there.
"""
from __future__ import annotations

import argparse
import os
import time

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.models.checkpoint import load_checkpoint  # noqa: E402
from deepfill.models.pretrained import (HOME_VARIABLE, MIRROR_VARIABLE, RELEASES, cache_home, fetch,  # noqa: E402
                                        is_cached, mirror_url, release)
from deepfill.utils.cli import ArgumentParser, UserError, run  # noqa: E402


def main() -> None:
    parser = ArgumentParser(prog="download_pretrained.py", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=f"{HOME_VARIABLE}: the cache folder (now {cache_home()}). {MIRROR_VARIABLE}: a "
                                   "mirror URL holding each release under NAME/, used instead of Google Drive.")
    parser.add_argument("name", help=f"which model: {', '.join(RELEASES)} (the _v2 names are DeepFill v2)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from", dest="folder", metavar="DIR",
                        help="convert this folder, downloaded by hand from the official release (no network)")
    source.add_argument("--url", help="a plain HTTP(S) folder holding the release files (checkpoint.txt, "
                        "snap-0.index, snap-0.data-00000-of-00001)")
    parser.add_argument("--force", action="store_true", help="fetch and convert again even if it is cached")
    args = parser.parse_args()
    model = release(args.name)
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise UserError(f"--url must start with http:// or https://, got {args.url!r} (for a folder use --from)")
    if is_cached(model.name) and not args.force:
        checkpoint = load_checkpoint(model.name)
        print(f"{model.name} is already in the cache: {checkpoint.path} ({checkpoint.spec.describe()}); "
              "--force fetches it again")
        return
    mirror = os.environ.get(MIRROR_VARIABLE)
    origin = args.folder or args.url or (mirror_url(mirror, model.name) if mirror else model.drive_url)
    print(f"fetching {model.name} (DeepFill v{model.version}, {model.dataset}) from {origin} into {cache_home()}")
    start = time.perf_counter()
    fetch(model.name, folder=args.folder, url=args.url, force=args.force)
    checkpoint = load_checkpoint(model.name)
    print(f"wrote {checkpoint.path} ({checkpoint.spec.describe()}) in {time.perf_counter() - start:.1f} s; "
          f"use it with --checkpoint {model.name}")


if __name__ == "__main__":
    run(main)
