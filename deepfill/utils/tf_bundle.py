"""A reader for TensorFlow's checkpoint format ("tensor bundle"), so that converting the official weights
needs no TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` — a LevelDB-style sorted table whose keys are tensor names and
whose values are ``BundleEntryProto`` records (dtype, shape, shard, offset, size) — and
``PREFIX.data-SSSSS-of-NNNNN`` files holding the raw little-endian tensor bytes. The table and the two small
protobuf messages are decoded by hand here; nothing else of the formats is needed.
"""
from __future__ import annotations

import os
import re
import struct
import sys
from dataclasses import dataclass

import numpy as np

from deepfill.utils.errors import UserError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class TFCheckpointError(UserError):
    """The path is not a readable TensorFlow checkpoint."""


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: ``dtype`` is TF's DataType enum, ``shape`` is in TF (NHWC/HWIO) order."""
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into (field number, value) pairs; values are ints or raw bytes."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        fields.append((number, value))
    return fields


def _parse_entry(value: bytes) -> BundleEntry:
    dtype = shard = offset = size = 0
    shape: list[int] = []
    for number, field in _proto_fields(value):
        if number == 1:
            dtype = field
        elif number == 2:
            shape = [dict(_proto_fields(dim)).get(1, 0)
                     for dim_number, dim in _proto_fields(field) if dim_number == 2]
        elif number == 3:
            shard = field
        elif number == 4:
            offset = field
        elif number == 5:
            size = field
        elif number == 7:
            raise ValueError("sliced (partitioned) variables are not supported")
    return BundleEntry(dtype, tuple(shape), shard, offset, size)


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of one table block (keys are prefix-compressed against the previous key)."""
    if offset + size + _BLOCK_TRAILER_SIZE > len(data):
        raise ValueError("block lies beyond the end of the file")
    if data[offset + size] != 0:
        raise ValueError("compressed index blocks are not supported")
    block = data[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 * (restarts + 1)
    if end < 0:
        raise ValueError("bad block restart array")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    if pos != end:
        raise ValueError("block entries overrun")
    return entries


def state_file(folder: str) -> str | None:
    """The ``checkpoint`` file TF's Saver writes beside a bundle, or the ``checkpoint.txt`` Google Drive
    delivers instead (it appends ``.txt`` to the official release's); None if there is neither."""
    for name in ("checkpoint", "checkpoint.txt"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def named_prefix(state: str) -> str:
    """The ``model_checkpoint_path`` a ``checkpoint`` file names (as written, often just ``snap-0``)."""
    with open(state, encoding="utf-8", errors="replace") as handle:
        found = re.search(r'^model_checkpoint_path:\s*"(.*)"', handle.read(), re.MULTILINE)
    if not found or not found.group(1):
        raise TFCheckpointError(f"{state} names no model_checkpoint_path")
    return found.group(1)


def _only_bundle(folder: str, problem: str) -> str:
    """The prefix of the one ``.index`` in ``folder``, used (with a note) when its ``checkpoint`` file does not
    lead to a bundle (``problem`` says why): with one candidate there is nothing to guess. With none or
    several, the error names ``problem`` and what is there."""
    indexes = sorted(name for name in os.listdir(folder) if name.endswith(".index"))
    if len(indexes) == 1:
        prefix = os.path.join(folder, indexes[0][:-len(".index")])
        print(f"note: {problem}; using the only checkpoint there, {prefix}", file=sys.stderr)
        return prefix
    if not indexes:
        raise TFCheckpointError(f"{problem}, and {folder} holds no .index file")
    raise TFCheckpointError(f"{problem}, and {folder} holds {len(indexes)} checkpoints ({', '.join(indexes)}); "
                            f"pass one as a prefix, such as {os.path.join(folder, indexes[-1][:-len('.index')])}")


def resolve_prefix(path: str) -> str:
    """Accept a folder holding a ``checkpoint`` (or ``checkpoint.txt``) file, a prefix (``…/snap-0``), or
    its .index/.data file. A ``checkpoint`` file naming a bundle that is not there (TF writes the training
    machine's absolute path) is looked up by its base name in the folder, then replaced by the folder's only
    bundle if it has exactly one."""
    if os.path.isdir(path):
        state = state_file(path)
        if state is None:
            raise TFCheckpointError(f"no TensorFlow checkpoint in {path} (expected a 'checkpoint' file; "
                                    f"or pass a prefix such as {os.path.join(path, 'snap-0')})")
        named = named_prefix(state)
        prefix = named if os.path.isabs(named) else os.path.join(path, named)
        if not os.path.isfile(prefix + ".index"):
            prefix = os.path.join(path, os.path.basename(named))
        if not os.path.isfile(prefix + ".index"):
            prefix = _only_bundle(path, f"{state} names {named}, which is not there ({os.path.basename(prefix)}"
                                        ".index not found)")
    else:
        prefix = re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path)
    if not os.path.isfile(prefix + ".index"):
        raise TFCheckpointError(f"no TensorFlow checkpoint at {path} ({prefix}.index not found)")
    return prefix


def read_index(prefix: str) -> tuple[int, dict[str, BundleEntry]]:
    """Parse ``PREFIX.index`` → (number of data shards, {tensor name: entry})."""
    with open(prefix + ".index", "rb") as handle:
        data = handle.read()
    try:
        if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
            raise ValueError("missing table footer")
        footer = data[len(data) - _FOOTER_SIZE:]
        _, pos = _varint(footer, 0)
        _, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, _ = _varint(footer, pos)
        shards, entries = 1, {}
        for _, handle_bytes in _block_entries(data, index_offset, index_size):
            block_offset, pos = _varint(handle_bytes, 0)
            block_size, _ = _varint(handle_bytes, pos)
            for key, value in _block_entries(data, block_offset, block_size):
                if key == b"":
                    shards = dict(_proto_fields(value)).get(1, 1)
                else:
                    entries[key.decode("utf-8")] = _parse_entry(value)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as error:
        raise TFCheckpointError(f"{prefix}.index is not a readable TensorFlow checkpoint index ({error})")
    return shards, entries


def check_complete(prefix: str) -> None:
    """Refuse a bundle whose index cannot be read or whose data files are missing or shorter than the
    index says — before any work, so that a half-downloaded release is named as such."""
    shards, entries = read_index(prefix)
    ends = [0] * shards
    for entry in entries.values():
        if entry.shard < shards:
            ends[entry.shard] = max(ends[entry.shard], entry.offset + entry.size)
    for shard, end in enumerate(ends):
        path = f"{prefix}.data-{shard:05d}-of-{shards:05d}"
        if not os.path.isfile(path):
            raise TFCheckpointError(f"the checkpoint is incomplete: {os.path.basename(path)} is missing "
                                    f"beside {os.path.basename(prefix)}.index")
        if os.path.getsize(path) < end:
            raise TFCheckpointError(f"the checkpoint is incomplete: {path} has {os.path.getsize(path):,} bytes, "
                                    f"its index needs {end:,}")


def read_tensors(prefix: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read the named tensors (default: all numeric ones) from a checkpoint prefix, in TF layout."""
    shards, entries = read_index(prefix)
    wanted = names if names is not None else [n for n, e in entries.items() if e.dtype in _DTYPES]
    tensors, files = {}, {}
    try:
        for name in wanted:
            entry = entries.get(name)
            if entry is None:
                raise TFCheckpointError(f"{prefix} has no tensor {name}")
            if entry.dtype not in _DTYPES:
                raise TFCheckpointError(f"{name} has unsupported TF dtype {entry.dtype}")
            dtype = np.dtype(_DTYPES[entry.dtype]).newbyteorder("<")
            count = int(np.prod(entry.shape, dtype=np.int64))
            if count * dtype.itemsize != entry.size:
                raise TFCheckpointError(f"{name}: index says {entry.size} bytes for shape {entry.shape}")
            path = f"{prefix}.data-{entry.shard:05d}-of-{shards:05d}"
            if path not in files:
                if not os.path.isfile(path):
                    raise TFCheckpointError(f"data file {path} is missing")
                files[path] = np.memmap(path, dtype=np.uint8, mode="r")
            raw = files[path][entry.offset:entry.offset + entry.size]
            if raw.size != entry.size:
                raise TFCheckpointError(f"{path} is truncated (tensor {name} lies beyond its end)")
            tensors[name] = np.frombuffer(raw.tobytes(), dtype=dtype).astype(dtype.newbyteorder("="))\
                .reshape(entry.shape)
    finally:
        files.clear()
    return tensors
