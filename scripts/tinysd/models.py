"""Small Stable-Diffusion-shaped models for the shapes-64 bundle (TorchScript-exportable).

  VAE        64x64x3 <-> 8x8x4 (latent factor 8). Encoder -> mean || logvar (8 channels).
  UNet       epsilon prediction on 8x8x4 latents; SD wiring with one ResBlock + one transformer
             block (self-attention, cross-attention to the text, GEGLU feed-forward) per level at
             8x8 and 4x4, a mid block, skip connections. Learned 2D absolute position embeddings
             are added to the tokens before attention (bilinearly resized for other latent sizes)
             so attention can tell left from right.
  TextEncoder  CLIP-vocabulary ids -> [B, L, D]. The 49408-row CLIP table would dominate the
             bundle, so the module holds rows only for the ids of the training vocabulary plus
             one shared "unknown" row, and an int32 id->row remap buffer over the whole vocabulary
             (any CLIP id is accepted; unknown words all map to the unknown row).
             Bidirectional pre-LN transformer with learned position embeddings, final LayerNorm.
"""
import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def gn(c):
    g = min(32, c // 4)
    while c % g:  # channel counts 32 does not divide (e.g. 144 = 96 + 48 after a skip concat)
        g -= 1
    return nn.GroupNorm(g, c, eps=1e-6)


# ----------------------------------------------------------------------------- VAE
class VResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class VAEEncoder(nn.Module):
    def __init__(self, ch=(32, 64, 96, 128), z=4):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        layers = []
        c = ch[0]
        for i, co in enumerate(ch):
            layers.append(VResBlock(c, co))
            c = co
            if i < len(ch) - 1:
                layers.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        layers.append(VResBlock(c, c))
        self.body = nn.Sequential(*layers)
        self.norm_out = gn(c)
        self.conv_out = nn.Conv2d(c, 2 * z, 3, padding=1)

    def forward(self, image):
        h = self.body(self.conv_in(image))
        return self.conv_out(F.silu(self.norm_out(h)))


class VAEDecoder(nn.Module):
    def __init__(self, ch=(32, 64, 96, 128), z=4):
        super().__init__()
        ch = list(ch)[::-1]
        self.conv_in = nn.Conv2d(z, ch[0], 3, padding=1)
        layers = [VResBlock(ch[0], ch[0])]
        c = ch[0]
        for i, co in enumerate(ch):
            layers.append(VResBlock(c, co))
            c = co
            if i < len(ch) - 1:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
                layers.append(nn.Conv2d(c, c, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.norm_out = gn(c)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, latents):
        h = self.body(self.conv_in(latents))
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------- text encoder
class TBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    def __init__(self, known_ids: List[int], vocab_size=49408, d=128, layers=3, heads=4, max_len=32):
        super().__init__()
        remap = torch.zeros(vocab_size, dtype=torch.int32)  # row 0 = unknown
        for row, tid in enumerate(sorted(set(known_ids))):
            remap[tid] = row + 1
        self.register_buffer("remap", remap)
        self.tok = nn.Embedding(len(set(known_ids)) + 1, d)
        self.pos = nn.Parameter(torch.randn(1, max_len, d) * 0.02)
        self.blocks = nn.ModuleList([TBlock(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.max_len = max_len
        self.vocab_size = vocab_size

    def forward(self, input_ids):
        ids = input_ids.clamp(0, self.vocab_size - 1)
        rows = self.remap[ids].long()
        L = input_ids.shape[1]
        if L <= self.max_len:
            pos = self.pos[:, :L]
        else:
            pos = F.pad(self.pos, (0, 0, 0, L - self.max_len), mode="replicate") if False else \
                torch.cat([self.pos, self.pos[:, -1:].expand(1, L - self.max_len, self.pos.shape[2])], 1)
        x = self.tok(rows) + pos
        for b in self.blocks:
            x = b(x)
        return self.ln(x)


# ----------------------------------------------------------------------------- UNet
def timestep_embedding(t, dim: int):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # flip_sin_to_cos like SD


class UResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(ctx_dim, c, bias=False)
        self.v = nn.Linear(ctx_dim, c, bias=False)
        self.o = nn.Linear(c, c)

    def forward(self, x, ctx):
        return self.attend(x, ctx)[0]

    def attend(self, x, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """The output and the attention probabilities averaged over heads, [B, N, M]."""
        B, N, C = x.shape
        M = ctx.shape[1]
        h = self.heads
        q = self.q(x).view(B, N, h, C // h).transpose(1, 2)
        k = self.k(ctx).view(B, M, h, C // h).transpose(1, 2)
        v = self.v(ctx).view(B, M, h, C // h).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) * (C // h) ** -0.5, dim=-1)
        out = (w @ v).transpose(1, 2).reshape(B, N, C)
        return self.o(out), w.mean(1)


class SpatialTransformer(nn.Module):
    def __init__(self, c, ctx_dim, heads, size):
        super().__init__()
        self.norm = gn(c)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.pos = nn.Parameter(torch.randn(1, c, size, size) * 0.02)
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1 = Attention(c, c, heads)
        self.attn2 = Attention(c, ctx_dim, heads)
        self.ff_in = nn.Linear(c, 4 * c)  # GEGLU, inner 2c
        self.ff_out = nn.Linear(2 * c, c)
        self.proj_out = nn.Conv2d(c, c, 1)
        self.size = size

    def forward(self, x, ctx):
        return self.forward_maps(x, ctx)[0]

    def forward_maps(self, x, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """The output and the cross-attention probabilities averaged over heads, [B, H*W, L]."""
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        pos = self.pos
        if H != self.size or W != self.size:
            pos = F.interpolate(pos, size=(H, W), mode="bilinear", align_corners=False)
        h = (h + pos).flatten(2).transpose(1, 2)
        y = self.ln1(h)
        h = h + self.attn1(y, y)
        a2, probs = self.attn2.attend(self.ln2(h), ctx)
        h = h + a2
        a, g = self.ff_in(self.ln3(h)).chunk(2, dim=-1)
        h = h + self.ff_out(a * F.gelu(g))
        h = h.transpose(1, 2).reshape(B, C, H, W)
        return x + self.proj_out(h), probs


class UNet(nn.Module):
    def __init__(self, zc=4, ch=(128, 128), ctx_dim=128, heads=4, size=8, tdim=256):
        super().__init__()
        c0, c1 = ch
        self.tin = 128
        self.time = nn.Sequential(nn.Linear(self.tin, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(zc, c0, 3, padding=1)
        self.d0r, self.d0a = UResBlock(c0, c0, tdim), SpatialTransformer(c0, ctx_dim, heads, size)
        self.down = nn.Conv2d(c0, c0, 3, stride=2, padding=1)
        self.d1r, self.d1a = UResBlock(c0, c1, tdim), SpatialTransformer(c1, ctx_dim, heads, size // 2)
        self.m1, self.ma, self.m2 = UResBlock(c1, c1, tdim), SpatialTransformer(c1, ctx_dim, heads, size // 2), UResBlock(c1, c1, tdim)
        # up at 4x4: skips d1 (c1), down (c0)
        self.u1r0, self.u1a0 = UResBlock(c1 + c1, c1, tdim), SpatialTransformer(c1, ctx_dim, heads, size // 2)
        self.u1r1, self.u1a1 = UResBlock(c1 + c0, c1, tdim), SpatialTransformer(c1, ctx_dim, heads, size // 2)
        self.up = nn.Conv2d(c1, c1, 3, padding=1)
        # up at 8x8: skips d0 (c0), conv_in (c0)
        self.u0r0, self.u0a0 = UResBlock(c1 + c0, c0, tdim), SpatialTransformer(c0, ctx_dim, heads, size)
        self.u0r1, self.u0a1 = UResBlock(c0 + c0, c0, tdim), SpatialTransformer(c0, ctx_dim, heads, size)
        self.norm_out = gn(c0)
        self.conv_out = nn.Conv2d(c0, zc, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    # The cross-attention layers whose maps forward_maps averages: those at the latent size.
    MAP_LAYERS = ["d0a.attn2", "u0a0.attn2", "u0a1.attn2"]

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.forward_maps(sample, timestep, encoder_hidden_states)[0]

    def forward_maps(self, sample, timestep, encoder_hidden_states) -> Tuple[torch.Tensor, torch.Tensor]:
        """ε and the cross-attention maps [B, L, h, w]: the probabilities of MAP_LAYERS (the
        latent-size level, down and up, as LEDITS++ takes SD's 16x16 level), averaged over heads
        and layers."""
        ctx = encoder_hidden_states
        if timestep.dim() == 0:
            timestep = timestep.reshape(1)
        timestep = timestep.expand(sample.shape[0])
        temb = self.time(timestep_embedding(timestep, self.tin))
        h0 = self.conv_in(sample)
        h1, p0 = self.d0a.forward_maps(self.d0r(h0, temb), ctx)
        h2 = self.down(h1)
        h3 = self.d1a(self.d1r(h2, temb), ctx)
        h = self.m2(self.ma(self.m1(h3, temb), ctx), temb)
        h = self.u1a0(self.u1r0(torch.cat([h, h3], 1), temb), ctx)
        h = self.u1a1(self.u1r1(torch.cat([h, h2], 1), temb), ctx)
        h = self.up(F.interpolate(h, size=(h1.shape[2], h1.shape[3]), mode="nearest"))
        h, p1 = self.u0a0.forward_maps(self.u0r0(torch.cat([h, h1], 1), temb), ctx)
        h, p2 = self.u0a1.forward_maps(self.u0r1(torch.cat([h, h0], 1), temb), ctx)
        maps = (p0 + p1 + p2) / 3
        B, _, H, W = sample.shape
        return self.conv_out(F.silu(self.norm_out(h))), maps.transpose(1, 2).reshape(B, -1, H, W)


# ----------------------------------------------------------------------------- UNet with N levels (shapes2-64)
class CrossTransformer(nn.Module):
    """SpatialTransformer without self-attention: position embedding, cross-attention to the
    text, GEGLU feed-forward. For the 16x16 level, where self-attention over 256 tokens would
    cost more than everything else at that level (the 8x8 level's self-attention already sees
    the whole picture)."""

    def __init__(self, c, ctx_dim, heads, size):
        super().__init__()
        self.norm = gn(c)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.pos = nn.Parameter(torch.randn(1, c, size, size) * 0.02)
        self.ln2, self.ln3 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn2 = Attention(c, ctx_dim, heads)
        self.ff_in = nn.Linear(c, 4 * c)
        self.ff_out = nn.Linear(2 * c, c)
        self.proj_out = nn.Conv2d(c, c, 1)
        self.size = size

    def forward(self, x, ctx):
        return self.forward_maps(x, ctx)[0]

    def forward_maps(self, x, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """The output and the cross-attention probabilities averaged over heads, [B, H*W, L]."""
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        pos = self.pos
        if H != self.size or W != self.size:
            pos = F.interpolate(pos, size=(H, W), mode="bilinear", align_corners=False)
        h = (h + pos).flatten(2).transpose(1, 2)
        a2, probs = self.attn2.attend(self.ln2(h), ctx)
        h = h + a2
        a, g = self.ff_in(self.ln3(h)).chunk(2, dim=-1)
        h = h + self.ff_out(a * F.gelu(g))
        h = h.transpose(1, 2).reshape(B, C, H, W)
        return x + self.proj_out(h), probs


class Stage(nn.Module):
    """One UNet stage: [concat a skip] -> ResBlock -> [transformer]. All stages of UNetN share the
    signature (h, skips, temb, ctx) so the UNet is a flat, scriptable list of them."""

    def __init__(self, cin, cout, tdim, ctx_dim, heads, size, attn: str, pop_skip: bool, level: int = -1):
        super().__init__()
        self.res = UResBlock(cin, cout, tdim)
        self.attn = (SpatialTransformer(cout, ctx_dim, heads, size) if attn == "full" else
                     CrossTransformer(cout, ctx_dim, heads, size) if attn == "cross" else None)
        self.pop_skip = pop_skip
        self.level = level

    def forward(self, h, skips: List[torch.Tensor], temb, ctx):
        return self.forward_maps(h, skips, temb, ctx)[0]

    def forward_maps(self, h, skips: List[torch.Tensor], temb, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """The output and the cross-attention probabilities [B, H*W, L] (empty without attention)."""
        if self.pop_skip:
            h = torch.cat([h, skips.pop()], 1)
        h = self.res(h, temb)
        attn = self.attn
        if attn is not None:
            return attn.forward_maps(h, ctx)
        return h, torch.empty(0)


class DownStage(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.level = -1

    def forward(self, h, skips: List[torch.Tensor], temb, ctx):
        return self.conv(h)

    def forward_maps(self, h, skips: List[torch.Tensor], temb, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.conv(h), torch.empty(0)


class UpStage(nn.Module):
    """Nearest upsampling to the size of the next skip (so odd latent sizes work), then a conv."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.level = -1

    def forward(self, h, skips: List[torch.Tensor], temb, ctx):
        s = skips[-1]
        return self.conv(F.interpolate(h, size=(s.shape[2], s.shape[3]), mode="nearest"))

    def forward_maps(self, h, skips: List[torch.Tensor], temb, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.forward(h, skips, temb, ctx), torch.empty(0)


class UNetN(nn.Module):
    """SD wiring (Rombach et al. 2022) with len(ch) levels: per level one ResBlock + transformer
    down (then a stride-2 conv, except at the lowest level), a ResBlock-transformer-ResBlock mid
    block at the lowest level, and per level two ResBlock + transformer stages up, each taking one
    skip (SD with layers_per_block 1). attn[i] says what level i's transformers hold: "full"
    (self-attention, cross-attention, GEGLU), "cross" (no self-attention) or "none"; all have
    learned 2D position embeddings at the training size (bilinearly resized for other sizes), so
    attention can tell left from right. Other latent sizes work (nearest upsampling to each
    skip's size, so odd sizes too)."""

    def __init__(self, zc=4, ch=(64, 96, 128), ctx_dim=128, head_dim=32, size=16, tdim=256,
                 attn=("cross", "full", "full")):
        super().__init__()
        L = len(ch)
        self.tin = 128
        self.time = nn.Sequential(nn.Linear(self.tin, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(zc, ch[0], 3, padding=1)
        heads = [max(1, c // head_dim) for c in ch]
        sizes = [max(1, size >> i) for i in range(L)]
        down = []
        skip_ch = [ch[0]]
        c = ch[0]
        for i in range(L):
            down.append(Stage(c, ch[i], tdim, ctx_dim, heads[i], sizes[i], attn[i], False, i))
            c = ch[i]
            skip_ch.append(c)
            if i < L - 1:
                down.append(DownStage(c))
                skip_ch.append(c)
        self.down = nn.ModuleList(down)
        cm = ch[-1]
        self.mid = nn.ModuleList([Stage(cm, cm, tdim, ctx_dim, heads[-1], sizes[-1], "full", False),
                                  Stage(cm, cm, tdim, ctx_dim, heads[-1], sizes[-1], "none", False)])
        up = []
        c = cm
        for i in reversed(range(L)):
            for _ in range(2):  # the level's two skips: its stage's output and the input of its downsampling
                sc = skip_ch.pop()
                up.append(Stage(c + sc, ch[i], tdim, ctx_dim, heads[i], sizes[i], attn[i], True, i))
                c = ch[i]
            if i > 0:
                up.append(UpStage(c))
        assert not skip_ch, "every skip must be used once"
        self.up = nn.ModuleList(up)
        self.norm_out = gn(c)
        self.conv_out = nn.Conv2d(c, zc, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.forward_maps(sample, timestep, encoder_hidden_states)[0]

    def map_layers(self) -> List[str]:
        """The cross-attention layers forward_maps averages: level 0's (the latent size), down and up."""
        return ["%s.%d.attn.attn2" % (part, i) for part, stages in (("down", self.down), ("up", self.up))
                for i, st in enumerate(stages) if getattr(st, "level", -1) == 0 and st.attn is not None]

    def forward_maps(self, sample, timestep, encoder_hidden_states) -> Tuple[torch.Tensor, torch.Tensor]:
        """ε and the cross-attention maps [B, L, h, w]: the probabilities of map_layers() averaged
        over heads and layers (LEDITS++ averages SD's 16x16 level, down and up, not mid)."""
        ctx = encoder_hidden_states
        if timestep.dim() == 0:
            timestep = timestep.reshape(1)
        timestep = timestep.expand(sample.shape[0])
        temb = self.time(timestep_embedding(timestep, self.tin))
        h = self.conv_in(sample)
        skips: List[torch.Tensor] = [h]
        maps: List[torch.Tensor] = []
        for st in self.down:
            h, p = st.forward_maps(h, skips, temb, ctx)
            skips.append(h)
            if st.level == 0 and p.numel() > 0:
                maps.append(p)
        for st in self.mid:
            h = st(h, skips, temb, ctx)
        for st in self.up:
            h, p = st.forward_maps(h, skips, temb, ctx)
            if st.level == 0 and p.numel() > 0:
                maps.append(p)
        B, _, H, W = sample.shape
        m = torch.stack(maps).mean(0).transpose(1, 2).reshape(B, -1, H, W)
        return self.conv_out(F.silu(self.norm_out(h))), m


class WithCrossAttentionMaps(nn.Module):
    """A bundle UNet that also returns its cross-attention maps (bundle formatVersion 2):
    forward(sample, timestep, ehs) -> (ε, maps [B, L, h, w])."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.unet.forward_maps(sample, timestep, encoder_hidden_states)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    import time
    torch.set_num_threads(1)
    enc, dec = VAEEncoder(), VAEDecoder()
    te = TextEncoder(list(range(100)))
    un = UNet()
    print("vae enc", nparams(enc), "dec", nparams(dec), "text", nparams(te), "unet", nparams(un))
    x = torch.randn(32, 3, 64, 64)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()))
    for i in range(3):
        t = time.time()
        y = dec(enc(x)[:, :4])
        l = F.mse_loss(y, x); l.backward(); opt.step(); opt.zero_grad()
        print("vae step b32", time.time() - t)
    ids = torch.randint(0, 49408, (64, 32))
    z = torch.randn(64, 4, 8, 8)
    opt = torch.optim.Adam(list(te.parameters()) + list(un.parameters()))
    for i in range(3):
        t = time.time()
        e = un(z, torch.randint(0, 1000, (64,)), te(ids))
        l = F.mse_loss(e, z); l.backward(); opt.step(); opt.zero_grad()
        print("unet step b64", time.time() - t)
    for m in (enc, dec, te, un):
        torch.jit.script(m)
    print(un(torch.randn(2, 4, 16, 16), torch.tensor([5]), te(ids[:2])).shape)
    print("scripted ok")
