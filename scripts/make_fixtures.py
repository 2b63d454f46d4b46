"""Write the small fixtures the runtime (Node) tests use.

usage: /usr/bin/python3 scripts/make_fixtures.py OUT_DIR

Files (all deterministic; see manifest.json for the machine-readable description):
  affine.pt              scripted: forward(x: Tensor[N, 8]) -> tanh(Linear(8, 5)(x)), seeded weights
  affine_io.safetensors  input [3, 8] f32, output [3, 5] f32
  multi.pt               scripted: forward(a, b) -> (a + b, a * b)            (a tuple)
  multi_io.safetensors   a [2, 3], b [2, 3], out0 = a + b, out1 = a * b
  listout.pt             scripted: forward(x) -> List[Tensor] [x + 1, x * 2, x.sum(dim=0)]
  listout_io.safetensors input [4, 3], out0, out1, out2
  dropout.pt             scripted Dropout(p=0.5), SAVED IN TRAINING MODE (training=True):
                         in eval() it is the identity, in train() about half the entries are 0
                         and the rest are doubled
  slow.pt                scripted: forward(x: Tensor[256, 256], n: int64 scalar tensor) -> Tensor:
                         n iterations of x = tanh(x @ W) with W 256x256; the time for n=100 is in
                         the manifest
  slow_io.safetensors    input [256, 256], n (int64 scalar, 3), output (after 3 iterations)
  dtypes.safetensors     one tensor per dtype (float32 float64 int64 int32 uint8 float16 bfloat16),
                         named after the dtype, shape [2, 3], known values (manifest)
  randn.safetensors      seed{S}_{shape} = (torch.manual_seed(S); torch.randn(shape)) float32
                         for S in 0, 42, 1234 and shapes 5, 2x3x4, 1x4x16x16
  manifest.json
"""
import json
import os
import sys
import time
from typing import List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402


class Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


class Multi(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor):
        return a + b, a * b


class ListOut(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [x + 1, x * 2, x.sum(dim=0)]


class Slow(torch.nn.Module):
    def __init__(self, size: int = 256):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        # scaled so that x stays O(1) through the iterations
        self.register_buffer("w", torch.randn(size, size, generator=g) / size ** 0.5)

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        for _ in range(int(n.item())):
            x = torch.tanh(torch.matmul(x, self.w))
        return x


DT_VALUES = {
    # exactly representable in the stored dtype
    "float32": ([[0.0, 1.0, -2.5], [0.15625, 1024.0, -0.0009765625]], torch.float32),
    "float64": ([[0.0, 1.0, -2.5], [0.1, 1e300, -3.141592653589793]], torch.float64),
    "float16": ([[0.0, 1.0, -2.5], [0.15625, 65504.0, -0.0009765625]], torch.float16),
    "bfloat16": ([[0.0, 1.0, -2.5], [0.15625, 1024.0, -0.0009765625]], torch.bfloat16),
    "int64": ([[0, 1, -1], [9007199254740993, -9223372036854775808, 9223372036854775807]], torch.int64),
    "int32": ([[0, 1, -1], [42, -2147483648, 2147483647]], torch.int32),
    "uint8": ([[0, 1, 127], [128, 200, 255]], torch.uint8),
}
RANDN_SEEDS = [0, 42, 1234]
RANDN_SHAPES = [[5], [2, 3, 4], [1, 4, 16, 16]]


def _desc(ts):
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in ts.items()}


def main(out):
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    man = {"generator": "scripts/make_fixtures.py", "torch": torch.__version__, "files": {}}
    F = man["files"]

    def save_io(name, ts, meta=None):
        save_file(ts, os.path.join(out, name), meta)
        F[name] = {"kind": "safetensors", "tensors": _desc(ts)}

    # affine
    torch.manual_seed(0)
    m = torch.jit.script(Affine().eval())
    m.save(os.path.join(out, "affine.pt"))
    x = torch.randn(3, 8)
    with torch.no_grad():
        y = m(x)
    F["affine.pt"] = {"kind": "torchscript", "forward": "forward(x: Tensor[N, 8] float32) -> Tensor[N, 5] = tanh(Linear(8, 5)(x))",
                      "training": False, "io": "affine_io.safetensors", "parameters": {"linear.weight": [5, 8], "linear.bias": [5]}}
    save_io("affine_io.safetensors", {"input": x, "output": y})

    # multi (tuple output)
    m = torch.jit.script(Multi().eval())
    m.save(os.path.join(out, "multi.pt"))
    a = torch.randn(2, 3)
    b = torch.randn(2, 3)
    o0, o1 = m(a, b)
    F["multi.pt"] = {"kind": "torchscript", "forward": "forward(a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor] = (a + b, a * b)",
                     "training": False, "io": "multi_io.safetensors"}
    save_io("multi_io.safetensors", {"a": a, "b": b, "out0": o0, "out1": o1})

    # listout (List[Tensor] output)
    m = torch.jit.script(ListOut().eval())
    m.save(os.path.join(out, "listout.pt"))
    x = torch.randn(4, 3)
    outs = m(x)
    F["listout.pt"] = {"kind": "torchscript", "forward": "forward(x: Tensor) -> List[Tensor] = [x + 1, x * 2, x.sum(dim=0)]",
                       "training": False, "io": "listout_io.safetensors"}
    save_io("listout_io.safetensors", {"input": x, "out0": outs[0], "out1": outs[1], "out2": outs[2]})

    # dropout, saved in training mode
    m = torch.jit.script(torch.nn.Dropout(p=0.5))
    m.train()
    m.save(os.path.join(out, "dropout.pt"))
    F["dropout.pt"] = {"kind": "torchscript", "forward": "forward(x: Tensor) -> Tensor = Dropout(p=0.5)(x)",
                       "training": True,
                       "note": "saved in training mode; eval(): identity; train(): each entry 0 or 2*x with p=0.5 each"}

    # slow
    m = torch.jit.script(Slow().eval())
    m.save(os.path.join(out, "slow.pt"))
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        m(x, torch.tensor(2))  # warm up (first scripted call optimises the graph)
        t0 = time.time()
        m(x, torch.tensor(100))
        dt = time.time() - t0
        y3 = m(x, torch.tensor(3))
    F["slow.pt"] = {"kind": "torchscript", "forward": "forward(x: Tensor[256, 256], n: Tensor int64 scalar) -> Tensor; n iterations of x = tanh(x @ W)",
                    "training": False, "io": "slow_io.safetensors", "seconds_for_n_100": round(dt, 4),
                    "seconds_per_iteration": round(dt / 100, 6), "threads": torch.get_num_threads()}
    save_io("slow_io.safetensors", {"input": x, "n": torch.tensor(3, dtype=torch.int64), "output": y3})
    print("slow.pt: n=100 took %.3fs (%.2f ms/iteration, 1 thread)" % (dt, dt * 10))

    # dtypes
    ts = {name: torch.tensor(vals, dtype=dt) for name, (vals, dt) in DT_VALUES.items()}
    for name, (vals, dt) in DT_VALUES.items():  # exactness check
        assert ts[name].tolist() == vals, (name, ts[name].tolist(), vals)
    save_io("dtypes.safetensors", ts, {"note": "one [2, 3] tensor per dtype, named after the dtype"})
    F["dtypes.safetensors"]["values"] = {
        name: [[str(v) for v in row] for row in vals] if dt == torch.int64 else vals
        for name, (vals, dt) in DT_VALUES.items()}
    F["dtypes.safetensors"]["note"] = "int64 values are given as decimal strings (they exceed 2^53)"

    # randn
    ts = {}
    for s in RANDN_SEEDS:
        for shape in RANDN_SHAPES:
            torch.manual_seed(s)
            ts["seed%d_%s" % (s, "x".join(str(d) for d in shape))] = torch.randn(shape)
    save_io("randn.safetensors", ts, {"recipe": "torch.manual_seed(seed); torch.randn(shape) (float32, CPU)"})
    F["randn.safetensors"]["recipe"] = "torch.manual_seed(seed); torch.randn(shape)  -- float32, CPU default generator"
    F["randn.safetensors"]["first_values"] = {k: [float(v) for v in t.reshape(-1)[:4]] for k, t in ts.items()}

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=2)
        f.write("\n")
    for fn in sorted(os.listdir(out)):
        print("%-26s %8d bytes" % (fn, os.path.getsize(os.path.join(out, fn))))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    t = time.time()
    main(sys.argv[1])
    print("done in %.1fs" % (time.time() - t))
