"""A minimal writer of TensorFlow's checkpoint format, independent of the reader, for test fixtures:
one uncompressed data block, an index block, an empty meta-index block and the table footer."""
from __future__ import annotations

import struct

import numpy as np

DTYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 9}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)


def write_bundle(prefix: str, tensors: dict[str, np.ndarray]) -> None:
    data, entries = bytearray(), [(b"", _field(1, 1))]
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        array = np.ascontiguousarray(array).reshape(array.shape)   # ascontiguousarray makes scalars 1-D
        shape = b"".join(_field(2, _field(1, dim)) for dim in array.shape)
        entry = (_field(1, DTYPES[array.dtype]) + _field(2, shape) + _field(4, len(data))
                 + _field(5, array.nbytes))
        entries.append((name.encode(), entry))
        data += array.tobytes()
    with open(prefix + ".data-00000-of-00001", "wb") as handle:
        handle.write(data)
    table = bytearray()
    blocks = {}
    for label, content in (("data", _block(entries)), ("meta", _block([]))):
        blocks[label] = (len(table), len(content))
        table += content + b"\0" + b"\0\0\0\0"
    index = _block([(entries[-1][0] + b"\xff", _varint(blocks["data"][0]) + _varint(blocks["data"][1]))])
    blocks["index"] = (len(table), len(index))
    table += index + b"\0" + b"\0\0\0\0"
    footer = b"".join(_varint(v) for v in (*blocks["meta"], *blocks["index"]))
    table += footer.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    with open(prefix + ".index", "wb") as handle:
        handle.write(table)


def write_checkpoint_state(folder: str, prefix_name: str) -> None:
    """The ``checkpoint`` file TF's Saver writes beside a bundle, naming ``prefix_name`` as the latest."""
    with open(f"{folder}/checkpoint", "w", encoding="utf-8") as handle:
        handle.write(f'model_checkpoint_path: "{prefix_name}"\nall_model_checkpoint_paths: "{prefix_name}"\n')
