"""Minimal, dependency-free (torch only) safetensors reader/writer.

Format (https://github.com/huggingface/safetensors):
  8 bytes   u64 little-endian N = header length in bytes
  N bytes   UTF-8 JSON header:
              {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
               "__metadata__": {"<str>": "<str>"}}          (optional, str -> str only)
            padded with spaces so that 8 + N is a multiple of 8
  rest      raw little-endian tensor bytes; data_offsets are relative to the start of this
            region; tensors are stored C-contiguous, back to back, in header order.

API:
  save_file(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None
  load_file(path) -> (dict[str, torch.Tensor], dict[str, str])   # metadata is {} if absent
  save_bytes / load_bytes: the same on bytes objects.

Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
This is the project's Python-side reader for artifacts torchedit writes, so load_file is
strict: it checks that offsets are in range, contiguous, non-overlapping and match
shape x dtype size, and raises ValueError with a clear message otherwise.
"""
import json
import struct
import sys

import torch

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

__all__ = ["save_file", "load_file", "save_bytes", "load_bytes"]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return b""
    # Reinterpret as raw bytes without going through numpy (numpy has no bfloat16).
    if sys.byteorder != "little" and t.element_size() > 1:
        raise RuntimeError("big-endian hosts are not supported")
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    raw = t.reshape(-1).view(torch.uint8)
    return raw.numpy().tobytes()


def save_bytes(tensors, metadata=None) -> bytes:
    if not isinstance(tensors, dict):
        raise TypeError("tensors must be a dict[str, torch.Tensor]")
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must be dict[str, str]; got %r: %r" % (k, type(v)))
        header["__metadata__"] = dict(metadata)
    chunks = []
    offset = 0
    for name, t in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError("invalid tensor name %r" % (name,))
        if not isinstance(t, torch.Tensor):
            raise TypeError("value for %r is not a torch.Tensor" % name)
        if t.dtype not in _NAMES:
            raise TypeError("tensor %r has unsupported dtype %s" % (name, t.dtype))
        b = _tensor_bytes(t)
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks)


def save_file(tensors, path, metadata=None) -> None:
    data = save_bytes(tensors, metadata)
    with open(path, "wb") as f:
        f.write(data)


def load_bytes(data: bytes, source: str = "<bytes>"):
    if len(data) < 8:
        raise ValueError("%s: file too short for a safetensors header" % source)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d exceeds file size %d" % (source, n, len(data)))
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("%s: header is not valid JSON: %s" % (source, e))
    if not isinstance(header, dict):
        raise ValueError("%s: header is not a JSON object" % source)
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n :]
    out = {}
    spans = []
    for name, info in header.items():
        try:
            dt = info["dtype"]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("%s: malformed header entry for tensor %r: %r" % (source, name, info))
        if dt not in _DTYPES:
            raise ValueError("%s: tensor %r has unsupported dtype %r" % (source, name, dt))
        numel = 1
        for s in shape:
            if s < 0:
                raise ValueError("%s: tensor %r has negative dimension" % (source, name))
            numel *= s
        if not (0 <= begin <= end <= len(body)):
            raise ValueError("%s: tensor %r data_offsets %r out of range (data size %d)" % (source, name, [begin, end], len(body)))
        if end - begin != numel * _SIZES[dt]:
            raise ValueError("%s: tensor %r has %d bytes but shape %r x %s needs %d" % (source, name, end - begin, shape, dt, numel * _SIZES[dt]))
        spans.append((begin, end, name))
        if numel == 0:
            out[name] = torch.empty(shape, dtype=_DTYPES[dt])
            continue
        raw = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.uint8)
        out[name] = raw.view(_DTYPES[dt]).reshape(shape).clone()
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise ValueError("%s: tensor %r data is not contiguous with the previous tensor (gap or overlap at %d)" % (source, name, b))
        pos = e
    if pos != len(body):
        raise ValueError("%s: %d trailing bytes after the last tensor" % (source, len(body) - pos))
    return out, metadata


def load_file(path):
    with open(path, "rb") as f:
        data = f.read()
    return load_bytes(data, str(path))


if __name__ == "__main__":
    # Self-test: round trip every dtype; print a file's contents if given a path.
    if len(sys.argv) > 1:
        ts, md = load_file(sys.argv[1])
        print("metadata:", json.dumps(md, indent=1))
        for k, v in ts.items():
            print("%-40s %-14s %s" % (k, str(v.dtype).replace("torch.", ""), list(v.shape)))
        sys.exit(0)
    torch.manual_seed(0)
    ts = {
        "f32": torch.randn(2, 3),
        "f64": torch.randn(4, dtype=torch.float64),
        "f16": torch.randn(3, 1).half(),
        "bf16": torch.randn(5).bfloat16(),
        "i64": torch.arange(-3, 3, dtype=torch.int64),
        "i32": torch.tensor([[1, -2], [2**31 - 1, -(2**31)]], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(3.5),
        "bool": torch.tensor([True, False, True]),
        "noncontig": torch.randn(4, 5).t(),
    }
    b = save_bytes(ts, {"a": "b"})
    assert (8 + struct.unpack("<Q", b[:8])[0]) % 8 == 0
    back, md = load_bytes(b)
    assert md == {"a": "b"}, md
    for k, v in ts.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k
    print("safetensors_io self-test ok")
