"""The official release models by name: fetched once, converted, kept in a cache folder, checked on every use.

``places2``, ``celeba``, ``celebahq`` and ``imagenet`` are the DeepFill v1 models of the official v1.0.0
release; ``places2_v2`` and ``celebahq_v2`` the DeepFill v2 models of the v2.0.0 release (all 256×256, BGR),
published as Google Drive folders. The first use of a name downloads its folder (with
``gdown``; or from a plain HTTP(S) mirror, or a folder downloaded by hand), checks that the TF bundle is
complete and is not a web page (Drive answers its quota and permission errors with HTML), converts it
(``deepfill.models.tf_convert``: the generator and critic the official graph names, optimiser state dropped) and
checks that it is the generation the name promises, then keeps the result as ``NAME.pdparams`` in
``$DEEPFILL_HOME`` (default ``~/.cache/deepfill``) with its sha256 beside it in ``NAME.sha256`` (``sha256sum
-c`` format). Every later use verifies that checksum, so a damaged file is refused with the command that
fetches it again rather than loaded as a silently wrong model.

All work happens in a temporary folder inside the cache folder and the finished files are renamed into
place, the checksum last: an interrupted download or conversion leaves no entry. A lock per name lets the
processes of a multi-GPU run that all start from ``places2`` fetch it once.

``DEEPFILL_MIRROR`` names a plain HTTP(S) mirror holding each release under ``NAME/`` (the files as Drive
delivers them: ``checkpoint.txt``, ``snap-0.index``, ``snap-0.data-00000-of-00001``); when it is set, first
uses fetch from there instead of Google Drive.
"""
from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from tqdm import tqdm

from deepfill.models.checkpoint_file import save_checkpoint
from deepfill.models.tf_convert import convert
from deepfill.utils.errors import UserError
from deepfill.utils.tf_bundle import check_complete, named_prefix, read_index, resolve_prefix, state_file

HOME_VARIABLE = "DEEPFILL_HOME"
MIRROR_VARIABLE = "DEEPFILL_MIRROR"
DEFAULT_HOME = os.path.join("~", ".cache", "deepfill")
TIMEOUT_S = 60          # per network operation (connect, each read): a stalled transfer fails, a slow one not
CHUNK = 1 << 20


@dataclass(frozen=True)
class Release:
    """One model of the official releases: its name here, what it was trained on, its Drive folder and
    its DeepFill generation (the v1.0.0 or the v2.0.0 release)."""

    name: str
    dataset: str
    drive_folder: str
    version: int = 1

    @property
    def drive_url(self) -> str:
        return f"https://drive.google.com/drive/folders/{self.drive_folder}"

    @property
    def source(self) -> str:
        """What the converted file's model record names as its origin."""
        return f"pretrained {self.name} (official v{self.version}.0.0 release, {self.dataset})"

    def manual_steps(self) -> str:
        """What to do when the automatic download cannot work: one sentence, for the end of an error."""
        return (f"download the folder {self.drive_url} by hand and run: python tools/download_pretrained.py "
                f"{self.name} --from DIR")


# Folder ids from the "Pretrained models" section of the official README: branch v1.0.0 for v1, master for v2.
RELEASES = {release.name: release for release in (
    Release("places2", "Places2", "1M3AFy7x9DqXaI-fINSynW7FJSXYROfv-"),
    Release("celeba", "CelebA", "1sP8ViF3mxUMN--xpKqonEeW9d8S8pJEo"),
    Release("celebahq", "CelebA-HQ", "1lpluFXyWDxTY6wcjixQGWX8jxUUMlyBW"),
    Release("imagenet", "ImageNet", "136APWSdPRAF7-XoS8sMBTLV-X3f-ogE0"),
    Release("places2_v2", "Places2", "1y7Irxm3HSHGvp546hZdAZwuNmhLUVcjO", version=2),
    Release("celebahq_v2", "CelebA-HQ", "1uvcDgMer-4hgWlm6_G9xjvEQGP8neW15", version=2),
)}


def is_pretrained_name(text: str) -> bool:
    return text in RELEASES


def release(name: str) -> Release:
    """The release called ``name``; an unknown name is refused with the list of known ones."""
    if name not in RELEASES:
        raise UserError(f"unknown pretrained model {name!r} (known: {', '.join(RELEASES)})")
    return RELEASES[name]


def cache_home() -> str:
    """The cache folder: ``$DEEPFILL_HOME``, else ``~/.cache/deepfill``."""
    return os.path.abspath(os.path.expanduser(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME))


def cached_path(name: str) -> str:
    return os.path.join(cache_home(), f"{name}.pdparams")


def _checksum_path(name: str) -> str:
    return os.path.join(cache_home(), f"{name}.sha256")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_cached(name: str) -> bool:
    """Whether ``name`` has a finished cache entry (the checksum is renamed into place last)."""
    return os.path.isfile(cached_path(name)) and os.path.isfile(_checksum_path(name))


def verified_path(name: str) -> str:
    """The cached file of ``name`` after checking it against its recorded sha256."""
    path = cached_path(name)
    try:
        with open(_checksum_path(name), encoding="ascii", errors="replace") as handle:
            recorded = (handle.read().split() or [""])[0]
        actual = sha256_of(path)
    except OSError as error:
        raise UserError(f"cannot read the cached {name} model ({error.strerror}: {error.filename})") from None
    if actual != recorded:
        raise UserError(f"the cached {name} model is damaged ({path} does not match its sha256); fetch it "
                        f"again with: python tools/download_pretrained.py {name} --force")
    return path


def resolve(name: str) -> str:
    """The verified cached file of ``name``, fetched and converted first if it is not in the cache yet
    (from ``$DEEPFILL_MIRROR`` if set, else Google Drive)."""
    release(name)
    if not is_cached(name):
        mirror = os.environ.get(MIRROR_VARIABLE)
        where = mirror_url(mirror, name) if mirror else "Google Drive"
        print(f"note: {name} is not in {cache_home()} yet; fetching it once from {where}", file=sys.stderr)
        fetch(name)
    return verified_path(name)


def mirror_url(mirror: str, name: str) -> str:
    """Where a mirror of all releases keeps ``name``'s files."""
    return f"{mirror.rstrip('/')}/{name}/"


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold the cache's lock for ``name``: concurrent first uses (one per GPU) fetch it once."""
    with open(os.path.join(cache_home(), f".{name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(name: str, folder: str | None = None, url: str | None = None, force: bool = False) -> str:
    """Fill the cache entry of ``name`` and return its path: from ``folder`` (the release folder
    downloaded by hand), from ``url`` (a plain HTTP(S) folder with the release files), from
    ``$DEEPFILL_MIRROR``, or else from Google Drive. An existing entry is kept unless ``force``."""
    model = release(name)
    if folder is not None and not os.path.exists(folder):
        raise UserError(f"folder not found: {folder}")
    try:
        os.makedirs(cache_home(), exist_ok=True)
        with _locked(name):
            return _fill(model, folder, url, force)
    except OSError as error:          # an unwritable cache folder, a full disk, an unreadable --from file
        raise UserError(f"cannot fetch {name}: {error.strerror or error} ({error.filename or cache_home()}); "
                        f"set {HOME_VARIABLE} to a writable folder with room, or check the files") from None


def _fill(model: Release, folder: str | None, url: str | None, force: bool) -> str:
    """``fetch``'s work, under the lock: obtain and check the bundle, convert, write, rename into place."""
    name = model.name
    if is_cached(name) and not force:
        return cached_path(name)         # another process fetched it while this one waited for the lock
    with tempfile.TemporaryDirectory(dir=cache_home(), prefix=f".tmp-{name}-") as work:
        bundle = _bundle_in(folder, folder, model) if folder is not None else _download(model, url, work)
        spec, weights = convert(bundle, source=model.source)
        if spec.version != model.version:
            raise UserError(f"the release files given for {name} hold DeepFill v{spec.version}, but {name} is the "
                            f"official DeepFill v{model.version} model; {model.manual_steps()}")
        converted = os.path.join(work, f"{name}.pdparams")
        save_checkpoint(converted, spec, weights)
        os.chmod(converted, 0o666 & ~_umask())        # written private; a shared cache must be readable
        checksum = os.path.join(work, f"{name}.sha256")
        with open(checksum, "w", encoding="ascii") as handle:
            handle.write(f"{sha256_of(converted)}  {name}.pdparams\n")
        os.replace(converted, cached_path(name))
        os.replace(checksum, _checksum_path(name))
    return cached_path(name)


def _download(model: Release, url: str | None, work: str) -> str:
    """Download the release into ``work`` from ``url``, ``$DEEPFILL_MIRROR`` or Google Drive; its prefix."""
    target = os.path.join(work, "download")
    os.makedirs(target)
    mirror = os.environ.get(MIRROR_VARIABLE)
    origin = url or (mirror_url(mirror, model.name) if mirror else None)
    if origin:
        _download_http(origin, target, model)
    else:
        _download_drive(model, target)
    return _bundle_in(target, origin or model.drive_url, model)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _looks_like_web_page(path: str) -> bool:
    with open(path, "rb") as handle:
        start = handle.read(512).lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _web_page_error(what: str, model: Release) -> UserError:
    return UserError(f"{what} is a web page, not the release file (Google Drive's answer when its download "
                     f"quota is exceeded or the file is not shared); try again later, or "
                     f"{model.manual_steps()}")


def _bundle_in(root: str, origin: str, model: Release) -> str:
    """The TF checkpoint prefix of the release files in ``root`` (or a folder below it, as a folder
    download may nest them), after checking that none is a web page and that the bundle is complete."""
    if not os.path.isdir(root):
        raise UserError(f"{root} is not a folder (give the folder holding the release files)")
    folder = next((path for path, _, names in sorted(os.walk(root))
                   if state_file(path) or any(n.endswith(".index") for n in names)), None)
    if folder is None:
        found = ", ".join(sorted(os.listdir(root))) or "nothing"
        raise UserError(f"{origin} holds no TensorFlow checkpoint (found: {found}; expected checkpoint.txt, "
                        f"snap-0.index and snap-0.data-00000-of-00001)")
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if os.path.isfile(path) and _looks_like_web_page(path):
            raise _web_page_error(f"{entry} from {origin}", model)
    indexes = sorted(name for name in os.listdir(folder) if name.endswith(".index"))
    if state_file(folder) is None and len(indexes) == 1:       # the small checkpoint file was left out
        prefix = os.path.join(folder, indexes[0][:-len(".index")])
    else:
        prefix = resolve_prefix(folder)
    check_complete(prefix)
    return prefix


def _download_drive(model: Release, target: str) -> None:
    """Download the release's Drive folder into ``target`` with gdown (which shows its own progress)."""
    try:
        import gdown
    except ImportError:
        raise UserError(f"fetching from Google Drive needs gdown (pip install gdown); or "
                        f"{model.manual_steps()}") from None
    try:
        files = gdown.download_folder(id=model.drive_folder, output=target, quiet=False)
    except Exception as error:       # gdown's own, requests' and OS errors, which vary between its versions
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot download {model.drive_url} ({reason}); {model.manual_steps()}") from None
    if not files:                    # older gdown versions report failure by returning None
        raise UserError(f"cannot download {model.drive_url} (gdown fetched no files); {model.manual_steps()}")


class _NotOnServer(Exception):
    """HTTP 404: the mirror has no such file (fine for the optional ones)."""


def _download_http(base: str, target: str, model: Release) -> None:
    """Download a release from a plain HTTP(S) folder: the ``checkpoint`` file (``.txt`` as Drive names it,
    or without), the index it points to, and the data shards the index names (``.meta`` is not needed)."""
    base = base if base.endswith("/") else base + "/"
    state = None
    for candidate in ("checkpoint.txt", "checkpoint"):
        try:
            _http_get(base + candidate, os.path.join(target, candidate), model)
        except _NotOnServer:
            continue
        state = os.path.join(target, candidate)
        break
    if state is None:
        raise UserError(f"{base} holds no release files (neither checkpoint.txt nor checkpoint is there: "
                        f"HTTP 404); {model.manual_steps()}")
    if _looks_like_web_page(state):
        raise _web_page_error(base + os.path.basename(state), model)
    prefix = os.path.basename(named_prefix(state))
    files = [prefix + ".index"]
    try:
        _http_get(base + files[0], os.path.join(target, files[0]), model)
        if _looks_like_web_page(os.path.join(target, files[0])):
            raise _web_page_error(base + files[0], model)
        shards, _ = read_index(os.path.join(target, prefix))
        for shard in range(shards):
            files.append(f"{prefix}.data-{shard:05d}-of-{shards:05d}")
            _http_get(base + files[-1], os.path.join(target, files[-1]), model)
    except _NotOnServer:
        raise UserError(f"{base} is incomplete: {files[-1]} is missing (HTTP 404)") from None


def _http_get(url: str, path: str, model: Release) -> None:
    """Download one file with a progress bar; any failure is a ``UserError`` naming the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": "deepfill-paddle"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise _NotOnServer(url) from None
        raise UserError(f"cannot download {url} (HTTP {error.code} {error.reason}); "
                        f"{model.manual_steps()}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise UserError(f"cannot download {url} ({reason}); {model.manual_steps()}") from None
    with response:
        if response.headers.get_content_type() == "text/html":
            raise _web_page_error(url, model)
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(path),
                   disable=total is not None and total < CHUNK)
        try:
            with open(path, "wb") as out, bar:
                while True:
                    try:
                        block = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as error:
                        raise UserError(f"the download of {url} broke off after {done:,} bytes "
                                        f"({type(error).__name__}); run the command again, or "
                                        f"{model.manual_steps()}") from None
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    bar.update(len(block))
        except BaseException:
            if os.path.exists(path):
                os.remove(path)
            raise
    if total is not None and done != total:
        os.remove(path)
        raise UserError(f"the download of {url} broke off after {done:,} of {total:,} bytes; run the command "
                        f"again, or {model.manual_steps()}")
