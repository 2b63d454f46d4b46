"""Make a random-weight torchedit bundle whose UNet has Stable Diffusion 1.5's structure at
reduced width, for benchmarks (bench/): the same kinds of layers, in the same order, with the
same skip connections as SD 1.5's UNet2DConditionModel, so the per-call cost mix (convolutions,
GroupNorm, self- and cross-attention, GEGLU) resembles SD's, at a size a 2-core CPU can run.

usage: /usr/bin/python3 scripts/make_sd_bench_bundle.py OUT_DIR [--seed N] [--sample-size 32]
          [--channels 64,128,256,256] [--tokenizer-dir DIR] [--full]

--full: SD 1.5's own widths (channels 320,640,1280,1280, 8 heads of width 40/80/160, ~860 M UNet
  parameters, 3.4 GB of float32 UNet weights) and sampleSize 64; the output-scale calibration runs
  at 32x32 latents to keep the build short. Write it outside the repository (bench/.cache is
  ignored by git); never commit it.

UNet (plain torch; names follow diffusers so the structure can be compared line by line):
  time embedding   sinusoidal 320 (flip_sin_to_cos, freq_shift 0, as SD) -> Linear 320->4c0,
                   SiLU, Linear 4c0->4c0
  conv_in          4 -> c0, 3x3
  down blocks      [CrossAttnDown, CrossAttnDown, CrossAttnDown, Down], channels c0..c3,
                   2 layers each: ResnetBlock2D (GroupNorm 32, SiLU, conv3x3, time-embedding
                   projection, GroupNorm 32, SiLU, conv3x3, 1x1 shortcut when the width changes)
                   + Transformer2D (GroupNorm 32 eps 1e-6, 1x1 proj_in, BasicTransformerBlock:
                   LayerNorm -> self-attention, LayerNorm -> cross-attention to the 768-wide
                   text states, LayerNorm -> GEGLU feed-forward x4; 1x1 proj_out; residual);
                   a stride-2 3x3 conv downsample after every block but the last
  mid block        ResnetBlock2D, Transformer2D, ResnetBlock2D
  up blocks        [Up, CrossAttnUp, CrossAttnUp, CrossAttnUp], 3 layers each, every layer
                   concatenating one skip from the down path (diffusers' channel bookkeeping),
                   nearest 2x + 3x3 conv upsample after every block but the last
  out              GroupNorm 32, SiLU, conv_out c0 -> 4
  8 attention heads everywhere (head width = channels / 8), attention without bias on q/k/v,
  computed as diffusers' AttnProcessor does (heads into the batch, baddbmm with alpha = scale).
Text encoder: CLIP-like, width 768 (SD 1.5's), 12 heads, 2 pre-LN layers with causal
  self-attention and quick-GELU MLP x4, final LayerNorm -> [B, 77, 768]; the token table is
  HASHED (4096 rows, row = id % 4096) as in scripts/make_test_bundle.py, to keep the file small.
VAE: small, factor 8, 4 latent channels: encoder 3 x (stride-2 conv, GroupNorm, SiLU) -> mean ‖
  logvar; decoder 3 x (nearest 2x, conv, GroupNorm, SiLU) -> RGB.

Weights: PyTorch's default initialisation (seeded), then each module's last layer is rescaled
from one forward pass on seeded inputs so outputs have SD-like scale (UNet std 1, scaled latents
~N(0, 1), decoder output mostly in [-1, 1]); the per-block activation statistics are printed
to show they stay O(1). Same seed -> the same bundle, bit for bit (single-threaded build).
Exported with scripts/bundle_writer.write_bundle (traced, float32), sampleSize 32.
"""
import argparse
import json
import os
import sys
import time
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundle_writer  # noqa: E402
# the blocks both generated bundles share (diffusers' attention without q/k/v bias, its sinusoid)
from make_test_bundle import Attention, timestep_embedding, _rescale_last as rescale_last  # noqa: E402

HASH_ROWS = 4096
SCALING = 0.18215
TEXT_WIDTH = 768
MAX_LENGTH = 77
HEADS = 8
TIME_PROJ = 320  # SD 1.5's sinusoid width (block_out_channels[0] there)
DEFAULT_TOKENIZER = bundle_writer.CLIP_TOKENIZER_DIR


# ----------------------------------------------------------------------------- UNet parts


class UNetAttention(Attention):
    """The same weights as Attention, computed as diffusers' AttnProcessor does it (0.12–0.21,
    the versions SD 1.5 exports are traced with): heads folded into the batch, then
    baddbmm(empty, q, kᵀ, beta=0, alpha=scale) -> softmax -> bmm. Folding the 1/sqrt(d) scale into
    the GEMM matters for cost: a separate multiply touches the [B·heads, n, n] score matrix
    once more (18% of a call at 32x32 latents, measured with the earlier matmul-then-multiply
    form). The UNet's attention takes no mask (only the text encoder's is causal)."""

    def forward(self, x, ctx):
        b, n = x.shape[0], x.shape[1]
        m = ctx.shape[1]
        h = self.heads
        q = self.to_q(x).reshape(b, n, h, -1).permute(0, 2, 1, 3).reshape(b * h, n, -1)
        k = self.to_k(ctx).reshape(b, m, h, -1).permute(0, 2, 1, 3).reshape(b * h, m, -1)
        v = self.to_v(ctx).reshape(b, m, h, -1).permute(0, 2, 1, 3).reshape(b * h, m, -1)
        empty = torch.empty(b * h, n, m, dtype=q.dtype, device=q.device)
        s = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        a = torch.bmm(s.softmax(dim=-1), v)
        return self.to_out(a.reshape(b, h, n, -1).permute(0, 2, 1, 3).reshape(b, n, -1))

class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.geglu = GEGLU(dim, mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x):
        return self.out(self.geglu(x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = UNetAttention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = UNetAttention(dim, ctx_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        h = self.norm1(x)
        x = x + self.attn1(h, h)
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2D(nn.Module):
    """SD 1.5's Transformer2DModel (use_linear_projection=False: 1x1 conv projections)."""

    def __init__(self, ch, ctx_dim, heads):
        super().__init__()
        self.norm = nn.GroupNorm(32, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.block = BasicTransformerBlock(ch, ctx_dim, heads)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x))
        y = y.permute(0, 2, 3, 1).reshape(b, h * w, c)
        y = self.block(y, ctx)
        y = y.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return self.proj_out(y) + x


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb_dim):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(32, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class DownBlock(nn.Module):
    def __init__(self, cin, cout, temb_dim, ctx_dim, heads, cross_attention, downsample, layers=2):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, temb_dim) for i in range(layers)])
        self.attentions = nn.ModuleList([Transformer2D(cout, ctx_dim, heads) for _ in range(layers)]) if cross_attention else None
        self.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if downsample else None

    def forward(self, h, temb, ctx) -> List[torch.Tensor]:
        """Returns every output the up path will concatenate (the last one is the block's output)."""
        outs = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h, ctx)
            outs.append(h)
        if self.downsample is not None:
            h = self.downsample(h)
            outs.append(h)
        return outs


class UpBlock(nn.Module):
    def __init__(self, prev_cout, cout, skip_in, temb_dim, ctx_dim, heads, cross_attention, upsample, layers=3):
        super().__init__()
        # diffusers: layer i takes prev_output_channel (i = 0) or out_channels, plus a skip of
        # out_channels, except the last layer's skip, which has the next-shallower block's width.
        self.resnets = nn.ModuleList([
            ResnetBlock2D((prev_cout if i == 0 else cout) + (skip_in if i == layers - 1 else cout), cout, temb_dim)
            for i in range(layers)])
        self.attentions = nn.ModuleList([Transformer2D(cout, ctx_dim, heads) for _ in range(layers)]) if cross_attention else None
        self.upsample = nn.Conv2d(cout, cout, 3, padding=1) if upsample else None

    def forward(self, h, skips: List[torch.Tensor], temb, ctx):
        for i, resnet in enumerate(self.resnets):
            h = resnet(torch.cat([h, skips[i]], dim=1), temb)
            if self.attentions is not None:
                h = self.attentions[i](h, ctx)
        if self.upsample is not None:
            h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return h


class UNet(nn.Module):
    def __init__(self, channels=(64, 128, 256, 256), latent_channels=4, ctx_dim=TEXT_WIDTH, heads=HEADS):
        super().__init__()
        c0 = channels[0]
        temb = 4 * c0
        self.time_linear_1 = nn.Linear(TIME_PROJ, temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(latent_channels, c0, 3, padding=1)
        n = len(channels)
        self.down_blocks = nn.ModuleList()
        cin = c0
        for i, cout in enumerate(channels):
            self.down_blocks.append(DownBlock(cin, cout, temb, ctx_dim, heads, cross_attention=i < n - 1, downsample=i < n - 1))
            cin = cout
        self.mid_resnet_1 = ResnetBlock2D(channels[-1], channels[-1], temb)
        self.mid_attention = Transformer2D(channels[-1], ctx_dim, heads)
        self.mid_resnet_2 = ResnetBlock2D(channels[-1], channels[-1], temb)
        rev = list(reversed(channels))
        self.up_blocks = nn.ModuleList()
        prev = rev[0]
        for i, cout in enumerate(rev):
            skip_in = rev[min(i + 1, n - 1)]
            self.up_blocks.append(UpBlock(prev, cout, skip_in, temb, ctx_dim, heads, cross_attention=i > 0, upsample=i < n - 1))
            prev = cout
        self.conv_norm_out = nn.GroupNorm(32, c0)
        self.conv_out = nn.Conv2d(c0, latent_channels, 3, padding=1)
        self.layers_per_up_block = 3

    def forward(self, sample, timestep, encoder_hidden_states):
        t = timestep_embedding(timestep, TIME_PROJ).type_as(sample)
        temb = self.time_linear_2(F.silu(self.time_linear_1(t)))
        h = self.conv_in(sample)
        skips = [h]
        for block in self.down_blocks:
            outs = block(h, temb, encoder_hidden_states)
            skips.extend(outs)
            h = outs[-1]
        h = self.mid_resnet_1(h, temb)
        h = self.mid_attention(h, encoder_hidden_states)
        h = self.mid_resnet_2(h, temb)
        for block in self.up_blocks:
            k = self.layers_per_up_block
            mine = skips[-k:]
            skips = skips[:-k]
            h = block(h, list(reversed(mine)), temb, encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ----------------------------------------------------------------------------- text encoder, VAE

class TextLayer(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width)
        self.self_attn = Attention(width, width, heads)
        self.layer_norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x, mask):
        h = self.layer_norm1(x)
        x = x + self.self_attn(h, h, mask)
        h = self.fc1(self.layer_norm2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))  # CLIP's quick GELU


class TextEncoder(nn.Module):
    def __init__(self, width=TEXT_WIDTH, max_length=MAX_LENGTH, layers=2, heads=12):
        super().__init__()
        self.token_embedding = nn.Embedding(HASH_ROWS, width)
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        self.position_embedding = nn.Parameter(torch.randn(max_length, width) * 0.5)
        self.layers = nn.ModuleList([TextLayer(width, heads) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(width)
        self.register_buffer("causal", torch.triu(torch.ones(max_length, max_length, dtype=torch.bool), diagonal=1))

    def forward(self, input_ids):
        L = input_ids.shape[1]
        x = self.token_embedding(torch.remainder(input_ids, HASH_ROWS)) + self.position_embedding[:L]
        mask = self.causal[:L, :L]
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_layer_norm(x)


class VaeEncoder(nn.Module):
    def __init__(self, latent_channels=4, ch=32):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.downs = nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1) for _ in range(3)])
        self.norms = nn.ModuleList([nn.GroupNorm(8, ch) for _ in range(3)])
        self.conv_out = nn.Conv2d(ch, 2 * latent_channels, 3, padding=1)

    def forward(self, image):
        h = self.conv_in(image)
        for down, norm in zip(self.downs, self.norms):
            h = F.silu(norm(down(h)))
        return self.conv_out(h)


class VaeDecoder(nn.Module):
    def __init__(self, latent_channels=4, ch=32):
        super().__init__()
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        self.ups = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1) for _ in range(3)])
        self.norms = nn.ModuleList([nn.GroupNorm(8, ch) for _ in range(3)])
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, latents):
        h = self.conv_in(latents)
        for up, norm in zip(self.ups, self.norms):
            h = F.silu(norm(up(F.interpolate(h, scale_factor=2.0, mode="nearest"))))
        return self.conv_out(h)


# ----------------------------------------------------------------------------- build

def count(module):
    return sum(p.numel() for p in module.parameters())


def activation_stats(unet, x, t, ctx):
    """std of every ResnetBlock2D / Transformer2D output, in call order."""
    stats = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: stats.append((name, o.std().item())))
             for name, m in unet.named_modules() if isinstance(m, (ResnetBlock2D, Transformer2D))]
    with torch.no_grad():
        out = unet(x, t, ctx)
    for h in hooks:
        h.remove()
    return stats, out


def build(args):
    torch.manual_seed(args.seed)
    channels = tuple(int(c) for c in args.channels.split(","))
    te = TextEncoder()
    unet = UNet(channels)
    venc = VaeEncoder()
    vdec = VaeDecoder()
    for m in (te, unet, venc, vdec):
        m.eval()
    g = torch.Generator().manual_seed(args.seed + 1)
    s = min(args.sample_size, 32) if args.full else args.sample_size
    with torch.no_grad():
        ids = torch.randint(0, 49408, (2, MAX_LENGTH), generator=g)
        ctx = te(ids)
        x = torch.randn(2, 4, s, s, generator=g)
        t = torch.tensor([10, 900])
        stats, out = activation_stats(unet, x, t, ctx)
        rescale_last(unet.conv_out, out, 1.0)
        img = torch.rand(2, 3, 8 * s, 8 * s, generator=g) * 2 - 1
        out = venc(img)
        C = 4
        sm, slv = out[:, :C].std().item(), out[:, C:].std().item()
        venc.conv_out.weight[:C].mul_(1.0 / SCALING / sm)
        venc.conv_out.bias[:C].mul_(1.0 / SCALING / sm)
        venc.conv_out.weight[C:].mul_(0.5 / slv)
        venc.conv_out.bias[C:].mul_(0.5 / slv)
        venc.conv_out.bias[C:].add_(-2.0 - venc(img)[:, C:].mean().item())
        rescale_last(vdec.conv_out, vdec(torch.randn(2, C, s, s, generator=g) / SCALING), 0.4)
        final = unet(x, t, ctx)
    return te, unet, venc, vdec, stats, ctx, final


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-size", type=int, default=32)
    p.add_argument("--channels", default="64,128,256,256", help="block widths (multiples of 32 for GroupNorm 32)")
    p.add_argument("--tokenizer-dir", default=DEFAULT_TOKENIZER)
    p.add_argument("--name", default="sd15-structure-bench")
    p.add_argument("--full", action="store_true", help="SD 1.5's exact widths (320,640,1280,1280) at sampleSize 64")
    args = p.parse_args()
    if args.full:
        args.channels, args.sample_size, args.name = "320,640,1280,1280", 64, "sd15-structure-full-bench"
    if args.sample_size % 8:
        p.error("--sample-size must be a multiple of 8")
    torch.set_num_threads(1)
    t0 = time.time()
    te, unet, venc, vdec, stats, ctx, out = build(args)
    print("parameters:")
    for name, m in (("text encoder", te), ("unet", unet), ("vae encoder", venc), ("vae decoder", vdec)):
        print("  %-14s %12s  (%.1f MB float32)" % (name, "{:,}".format(count(m)), count(m) * 4 / 1e6))
    print("activation std per block at init (2 samples, t = 10 and 900):")
    for name, sd in stats:
        print("  %-40s %.3f" % (name, sd))
    print("  %-40s %.3f (after rescaling conv_out)" % ("unet output", out.std().item()))
    print("  %-40s %.3f" % ("text states", ctx.std().item()))
    config = {
        "name": args.name,
        "sampleSize": args.sample_size,
        "latentChannels": 4,
        "vaeScaleFactor": 8,
        "scalingFactor": SCALING,
        "predictionType": "epsilon",
        "scheduler": {"numTrainTimesteps": 1000, "betaSchedule": "scaled_linear", "betaStart": 0.00085,
                      "betaEnd": 0.012, "stepsOffset": 1, "setAlphaToOne": False, "timestepSpacing": "leading"},
        "textEncoder": {"maxLength": MAX_LENGTH, "hiddenSize": TEXT_WIDTH, "bosTokenId": 49406,
                        "eosTokenId": 49407, "padTokenId": 49407},
        "benchBundle": {"generator": "scripts/make_sd_bench_bundle.py", "seed": args.seed, "channels": args.channels,
                        "heads": HEADS, "parameters": {"textEncoder": count(te), "unet": count(unet),
                                                       "vaeEncoder": count(venc), "vaeDecoder": count(vdec)}},
    }
    s = args.sample_size
    vl = [(1, 8, 8), (2, 16, 16), (3, 16, 8)] + ([(1, s, s)] if s not in (8, 16) else [])
    bundle_writer.write_bundle(args.out_dir, te, unet, venc, vdec, config, args.tokenizer_dir, verify_latents=vl)
    with open(os.path.join(args.out_dir, "model.json")) as f:
        assert json.load(f)["sampleSize"] == s
    print("done in %.1fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
