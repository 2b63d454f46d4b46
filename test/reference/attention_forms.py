"""TorchScript modules with each attention form the fused-attention graph pass recognises, and some
it must leave alone (test/runtime/attentionFusion.test.ts).

usage: /usr/bin/python3 test/reference/attention_forms.py OUT_DIR

Every module takes (x [2, 24, 32], ctx [2, 7, 16]) and has self- and cross-attention with 4 heads
of width 8. Written to OUT_DIR/<name>.pt; OUT_DIR/forms.json lists {name: fused sites expected}.
"""
import json
import os
import sys

import torch
import torch.nn as nn

HEADS, C, CTX = 4, 32, 16


class Projections(nn.Module):
    def __init__(self, ctx_dim):
        super().__init__()
        self.to_q = nn.Linear(C, C, bias=False)
        self.to_k = nn.Linear(ctx_dim, C, bias=False)
        self.to_v = nn.Linear(ctx_dim, C, bias=False)
        self.to_out = nn.Linear(C, C)
        self.scale = (C // HEADS) ** -0.5
        self.heads = HEADS

    def heads4(self, x, ctx):
        b, n, m = x.shape[0], x.shape[1], ctx.shape[1]
        q = self.to_q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(ctx).reshape(b, m, self.heads, -1).transpose(1, 2)
        v = self.to_v(ctx).reshape(b, m, self.heads, -1).transpose(1, 2)
        return q, k, v

    def out4(self, a):
        b, n = a.shape[0], a.shape[2]
        return self.to_out(a.transpose(1, 2).reshape(b, n, -1))


class Baddbmm(Projections):
    """diffusers' AttnProcessor (0.12–0.21): heads in the batch, baddbmm(empty, q, kᵀ, 0, scale)."""

    def forward(self, x, ctx):
        b, n, m = x.shape[0], x.shape[1], ctx.shape[1]
        q = self.to_q(x).reshape(b, n, HEADS, -1).permute(0, 2, 1, 3).reshape(b * HEADS, n, -1)
        k = self.to_k(ctx).reshape(b, m, HEADS, -1).permute(0, 2, 1, 3).reshape(b * HEADS, m, -1)
        v = self.to_v(ctx).reshape(b, m, HEADS, -1).permute(0, 2, 1, 3).reshape(b * HEADS, m, -1)
        empty = torch.empty(b * HEADS, n, m, dtype=q.dtype, device=q.device)
        s = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        a = torch.bmm(s.softmax(dim=-1), v)
        return self.to_out(a.reshape(b, HEADS, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1))


class MatmulMul(Projections):
    """scripts/make_test_bundle.py: matmul(q, kᵀ) * scale → softmax → matmul, 4-D."""

    def forward(self, x, ctx):
        q, k, v = self.heads4(x, ctx)
        s = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        return self.out4(torch.matmul(s.softmax(dim=-1), v))


class MatmulDiv(Projections):
    """(q @ kᵀ) / √d → torch.softmax → @ (the operator form, divided)."""

    def forward(self, x, ctx):
        q, k, v = self.heads4(x, ctx)
        w = torch.softmax((q @ k.transpose(-1, -2)) / (C // HEADS) ** 0.5, dim=-1)
        return self.out4(w @ v)


class WithMaps(Projections):
    """scripts/tinysd/models.py with format-2 maps: the probabilities are also averaged over heads
    into a second output. That site must keep its graph."""

    def forward(self, x, ctx):
        q, k, v = self.heads4(x, ctx)
        w = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        return self.out4(w @ v), w.mean(1)


class TinySD(nn.Module):
    """scripts/tinysd/models.py's Attention (the shipped shapes-64): the scale traced from the input's
    shape ((C // h) ** -0.5 is a float the graph computes), and the head-averaged probabilities
    computed in every layer: dropped (dead code) where the caller takes [0], returned where it
    makes maps."""

    def __init__(self, ctx_dim):
        super().__init__()
        self.heads = HEADS
        self.q = nn.Linear(C, C, bias=False)
        self.k = nn.Linear(ctx_dim, C, bias=False)
        self.v = nn.Linear(ctx_dim, C, bias=False)
        self.o = nn.Linear(C, C)

    def forward(self, x, ctx):
        return self.attend(x, ctx)[0]

    def attend(self, x, ctx):
        B, N, Cx = x.shape
        M = ctx.shape[1]
        h = self.heads
        q = self.q(x).view(B, N, h, Cx // h).transpose(1, 2)
        k = self.k(ctx).view(B, M, h, Cx // h).transpose(1, 2)
        v = self.v(ctx).view(B, M, h, Cx // h).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) * (Cx // h) ** -0.5, dim=-1)
        out = (w @ v).transpose(1, 2).reshape(B, N, Cx)
        return self.o(out), w.mean(1)


class TinySDBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn1 = TinySD(C)
        self.attn2 = TinySD(CTX)

    def forward(self, x, ctx):
        x = x + self.attn1(x, x)
        h, maps = self.attn2.attend(x, ctx)
        return x + h, maps


class Block(nn.Module):
    def __init__(self, attn_cls, maps_cls=None):
        super().__init__()
        self.attn1 = attn_cls(C)
        self.attn2 = (maps_cls or attn_cls)(CTX)
        self.maps = maps_cls is not None

    def forward(self, x, ctx):
        x = x + self.attn1(x, x)
        if self.maps:
            h, maps = self.attn2(x, ctx)
            return x + h, maps
        return x + self.attn2(x, ctx)


class NoAttention(nn.Module):
    """A softmax whose output is used twice and a matmul chain that is not attention."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(C, C)

    def forward(self, x, ctx):
        p = torch.softmax(self.lin(x), dim=-1)
        return p @ p.transpose(-1, -2) @ x + p


class Scripted(nn.Module):
    """torch.jit.script instead of trace: the scale is a literal in the graph."""

    def __init__(self):
        super().__init__()
        self.proj = Projections(C)

    def forward(self, x, ctx):
        q, k, v = self.proj.heads4(x, x)
        s = torch.matmul(q, k.transpose(-1, -2)) * 0.35355339059327373
        return self.proj.out4(torch.matmul(torch.softmax(s, dim=-1), v))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 24, C), torch.randn(2, 7, CTX)
    forms = {
        "baddbmm": (Block(Baddbmm), 2),
        "matmul_mul": (Block(MatmulMul), 2),
        "matmul_div": (Block(MatmulDiv), 2),
        "with_maps": (Block(MatmulMul, WithMaps), 1),
        "tinysd": (TinySDBlock(), 1),
        "none": (NoAttention(), 0),
    }
    expected = {}
    with torch.no_grad():
        for name, (module, sites) in forms.items():
            torch.jit.trace(module.eval(), (x, ctx), check_trace=False).save(os.path.join(out, name + ".pt"))
            expected[name] = sites
        torch.jit.script(Scripted().eval()).save(os.path.join(out, "scripted.pt"))
        expected["scripted"] = 1
    with open(os.path.join(out, "forms.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])
