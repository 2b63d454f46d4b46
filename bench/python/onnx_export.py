"""The onnxruntime-node sides of bench/unet.ts: a bench bundle's UNet exported to ONNX, twice.

usage: /usr/bin/python3 bench/python/onnx_export.py '{"bundle", "out", "latent", "batch", "variant"}'

variant "plain" writes `out`/plain/model.onnx (attention as exported: MatMul -> Mul -> Softmax ->
MatMul); "mha" writes `out`/mha/model.onnx (each attention's core as one
`com.microsoft::MultiHeadAttention` node, the contrib op onnxruntime's transformer optimiser fuses
diffusers' attention into; its CPU kernel is onnxruntime's fused attention). One variant per
process: exporting the full-size UNet peaks near 16 GB. Prints {"path": path, "fused": n}.

The graph is exported from the eager UNet the bundle was traced from
(scripts/make_sd_bench_bundle.py, rebuilt from model.json's benchBundle.channels) with unet.pt's
own weights loaded into it, so both ONNX files compute what unet.pt computes; bench/unet.ts
checks that on the outputs. Models over 2 GB (the full-size bundle) are written with external
data beside them (ONNX's protobuf limit, one file per tensor), which onnxruntime reads from the
same folder: hence a folder per variant.

No `onnx` or `onnxruntime` Python package is needed (none is installable here): torch.onnx
serialises the graph itself; onnxruntime-node is the only runtime that reads the files.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import make_sd_bench_bundle as maker  # noqa: E402


class MultiHeadAttention(torch.autograd.Function):
    """softmax(q kᵀ · scale) v over `heads` heads of [B, N, D] inputs, exported as the contrib op
    (its inputs are the projected q, k, v in [B, S, hidden] layout; num_heads and scale are
    attributes: onnxruntime/core/graph/contrib_ops/bert_defs.cc)."""

    @staticmethod
    def forward(ctx, q, k, v, heads: int, scale: float):
        b, n, d = q.shape
        m = k.shape[1]
        qh = q.reshape(b, n, heads, -1).transpose(1, 2)
        kh = k.reshape(b, m, heads, -1).transpose(1, 2)
        vh = v.reshape(b, m, heads, -1).transpose(1, 2)
        a = torch.matmul((torch.matmul(qh, kh.transpose(-1, -2)) * scale).softmax(-1), vh)
        return a.transpose(1, 2).reshape(b, n, d)

    @staticmethod
    def symbolic(g, q, k, v, heads, scale):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads, scale_f=scale)
        out.setType(q.type())
        return out


def plain_forward(self, x, ctx):
    # The attention spelled out (MatMul -> Mul -> Softmax -> MatMul per head). Exporting the
    # baddbmm form instead would constant-fold its `empty` [B·heads, n, m] operand into the file
    # (64 MB per self-attention at 32×32), although beta=0 ignores it.
    return self.to_out(MultiHeadAttention.forward(None, self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads, float(self.scale)))


def mha_forward(self, x, ctx):
    return self.to_out(MultiHeadAttention.apply(self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads, float(self.scale)))


def main(args):
    torch.set_num_threads(1)
    with open(os.path.join(args["bundle"], "model.json")) as f:
        cfg = json.load(f)
    channels = tuple(int(c) for c in cfg["benchBundle"]["channels"].split(","))
    unet = maker.UNet(channels).eval()
    scripted = torch.jit.load(os.path.join(args["bundle"], "unet.pt"))
    missing = unet.load_state_dict(scripted.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys, missing
    del scripted
    b, lat = args["batch"], args["latent"]
    sample = torch.zeros(b, cfg["latentChannels"], lat, lat)
    t = torch.full((b,), 500, dtype=torch.long)
    states = torch.zeros(b, cfg["textEncoder"]["maxLength"], cfg["textEncoder"]["hiddenSize"])
    variant = args["variant"]
    out = os.path.join(args["out"], variant)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    fused = 0
    for m in unet.modules():
        if isinstance(m, maker.UNetAttention):
            m.forward = (mha_forward if variant == "mha" else plain_forward).__get__(m)
            fused += variant == "mha"
    with torch.no_grad():
        torch.onnx.export(
            unet,
            (sample, t, states),
            path,
            input_names=["sample", "timestep", "encoder_hidden_states"],
            output_names=["noise"],
            opset_version=17,
            custom_opsets={"com.microsoft": 1} if variant == "mha" else None,
            do_constant_folding=False,  # onnxruntime folds at load; folding here doubled the peak memory
        )
    print(json.dumps({"path": path, "fused": fused}))

if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
