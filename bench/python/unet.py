"""One side of bench/unet.ts: timed UNet calls of a bundle's unet.pt in plain PyTorch (what a user
writes: torch.jit.load, no_grad, one thread), and the numbers the table needs besides.

usage: /usr/bin/python3 bench/python/unet.py '{"bundle", "latent", "batch", "calls", "threads", "out"?}'
       /usr/bin/python3 bench/python/unet.py --flops '{"bundle", "latent", "batch"}'
       /usr/bin/python3 bench/python/unet.py --sgemm '{"threads"}'

The first prints {"seconds": [...]} after two warm-up calls and writes the last output to `out`
(raw float32) when given. The inputs are torchedit's: torch.manual_seed(1) randn sample
[batch, 4, L, L], torch.manual_seed(2) randn states [batch, 77, hidden], t = 500.

--flops: 2 × multiply-adds of one call by kind (convolutions, linear layers, attention products),
counted on the eager UNet the bundle was traced from (see flops()).
--sgemm: the best GFLOP/s of torch.mm on 2048² float32 matrices (the same OpenBLAS libtorch uses):
the machine's SGEMM peak the table compares with.
"""
import json
import os
import sys
import time

import torch


def inputs(cfg, bundle, latent, batch):
    torch.manual_seed(1)
    sample = torch.randn(batch, cfg["latentChannels"], latent, latent)
    torch.manual_seed(2)
    states = torch.randn(batch, cfg["textEncoder"]["maxLength"], cfg["textEncoder"]["hiddenSize"])
    t = torch.full((batch,), 500, dtype=torch.long)
    return sample, t, states


def load(args):
    with open(os.path.join(args["bundle"], "model.json")) as f:
        cfg = json.load(f)
    unet = torch.jit.load(os.path.join(args["bundle"], "unet.pt")).eval()
    return cfg, unet


def first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def timed(args):
    torch.set_num_threads(args["threads"])
    cfg, unet = load(args)
    sample, t, states = inputs(cfg, args["bundle"], args["latent"], args["batch"])
    seconds = []
    with torch.no_grad():
        for _ in range(2):  # warm-up: TorchScript profiles the first call and optimises on the second
            first(unet(sample, t, states))
        for _ in range(args["calls"]):
            t0 = time.perf_counter()
            out = first(unet(sample, t, states))
            seconds.append(time.perf_counter() - t0)
    if args.get("out"):
        out.contiguous().numpy().astype("float32").tofile(args["out"])
    print(json.dumps({"seconds": seconds}))


def flops(args):
    """2 × multiply-adds of one call. Counted on the eager UNet the bundle was traced from
    (scripts/make_sd_bench_bundle.py, rebuilt from model.json's benchBundle.channels: the same
    layers and shapes): forward hooks give every Conv2d's and Linear's input and output shapes,
    the profiler every attention product (baddbmm, bmm). Elementwise ops, softmax and norms are
    not counted."""
    torch.set_num_threads(1)
    with open(os.path.join(args["bundle"], "model.json")) as f:
        cfg = json.load(f)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
    import make_sd_bench_bundle as maker  # noqa: E402

    channels = tuple(int(c) for c in cfg["benchBundle"]["channels"].split(","))
    unet = maker.UNet(channels).eval()
    sample, t, states = inputs(cfg, args["bundle"], args["latent"], args["batch"])
    total = {"conv": 0, "linear": 0, "attention": 0}

    def conv_hook(m, inp, out):
        n, cout, h, w = out.shape
        total["conv"] += 2 * n * cout * h * w * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total["linear"] += 2 * (out.numel() // m.out_features) * m.in_features * m.out_features

    for m in unet.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad(), torch.autograd.profiler.profile(record_shapes=True) as prof:
        unet(sample, t, states)
    for e in prof.function_events:
        if e.name == "aten::baddbmm":
            a, b = e.input_shapes[1], e.input_shapes[2]
        elif e.name == "aten::bmm" and not (e.cpu_parent and e.cpu_parent.name in ("aten::baddbmm", "aten::matmul")):
            a, b = e.input_shapes[0], e.input_shapes[1]
        else:
            continue
        total["attention"] += 2 * a[0] * a[1] * a[2] * b[2]
    print(json.dumps({"flops": sum(total.values()), "byKind": total}))


def sgemm(args):
    torch.set_num_threads(args["threads"])
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"gflops": 2 * n ** 3 / best / 1e9}))


if __name__ == "__main__":
    if sys.argv[1] == "--flops":
        flops(json.loads(sys.argv[2]))
    elif sys.argv[1] == "--sgemm":
        sgemm(json.loads(sys.argv[2]))
    else:
        timed(json.loads(sys.argv[1]))
