"""Make a SMALL random-weight torchedit bundle (docs/bundle-format.md layout) for tests.

usage: /usr/bin/python3 scripts/make_test_bundle.py OUT_DIR [--seed N] [--sample-size 8]
          [--latent-channels 4] [--hidden-size 32] [--max-length 77]
          [--prediction-type epsilon|v_prediction] [--pad-token-id 49407]
          [--dtype float32|float16] [--variant ok|bad-unet-channels|bad-hidden-size|bad-maps]
          [--attention-maps]
          [--tokenizer-dir DIR] [--name NAME]

The modules have exactly the bundle signatures and an SD-like structure, at toy width:
  text encoder  token embedding (HASHED: 4096 rows, row = id % 4096, to keep the file ~0.5 MB
                instead of 49408 rows) + learned position embedding [maxLength, D] + one pre-LN
                transformer layer with CLIP's causal self-attention + GELU MLP + final LayerNorm
                -> [B, L, D]
  UNet          sinusoidal timestep embedding (diffusers get_timestep_embedding with
                flip_sin_to_cos=True, freq_shift=0, as SD) -> Linear/SiLU/Linear; conv_in;
                down block (ResNet block with GroupNorm + timestep injection, transformer with
                self-attention, cross-attention over encoder_hidden_states and GELU FF,
                stride-2 conv); mid ResNet block; up block (nearest 2x + conv, skip concat,
                ResNet block, transformer); GroupNorm/SiLU/conv_out -> latentChannels.
                Works for any batch and any latent h, w that are even (so all multiples of 8).
  VAE encoder   3 x (conv stride 2 + GroupNorm + SiLU) = /8, conv -> 2C = mean ‖ logvar
  VAE decoder   conv_in, 3 x (nearest 2x + conv + GroupNorm + SiLU) = x8, conv_out -> 3 channels
                (no tanh; scaled so outputs are mostly within [-1, 1])
Random init is the PyTorch default, then each module's last layer is rescaled (deterministically,
from one forward pass on seeded random inputs) so outputs have a fixed O(1) std: text encoder
~1 (final LayerNorm), UNet 1.0, VAE mean 1/scalingFactor (so scaled latents ~N(0, 1), as in SD)
/ logvar centred at -2 with std 0.5, decoder 0.4 on unscaled latents randn/scalingFactor.
Variants (for loader rejection tests): bad-unet-channels -> UNet outputs latentChannels+1 channels;
bad-hidden-size -> the text encoder outputs hiddenSize+8 wide states while model.json says
hiddenSize (the UNet still expects hiddenSize); bad-maps -> cross-attention maps at half the size
model.json declares.
--attention-maps: the UNet returns (noise, maps) with maps [B, L, h, w], the cross-attention
probabilities of its two transformers averaged over heads and both layers (format version 2,
crossAttentionMaps.downsample 1).
All graphs are dtype-agnostic (no hard-coded float32 casts), so --dtype float16 works on CPU
through bundle_writer's fp32-trace-then-convert path (fp16 kernels are not run on CPU).
"""
import argparse
import json
import math
import os
import sys
import time
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundle_writer  # noqa: E402

HASH_ROWS = 4096
SCALING = 0.18215
PROMPT_GAIN = 4.0  # see build()
TIME_GAIN = 3.0
DEFAULT_TOKENIZER = bundle_writer.CLIP_TOKENIZER_DIR


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, ctx, mask: Optional[torch.Tensor] = None):
        return self.attend(x, ctx, mask)[0]

    def attend(self, x, ctx, mask: Optional[torch.Tensor] = None):
        """The output and the attention probabilities averaged over heads, [b, n, m]."""
        b, n = x.shape[0], x.shape[1]
        m = ctx.shape[1]
        q = self.to_q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(ctx).reshape(b, m, self.heads, -1).transpose(1, 2)
        v = self.to_v(ctx).reshape(b, m, self.heads, -1).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if mask is not None:
            s = s.masked_fill(mask, float("-inf"))
        p = s.softmax(dim=-1)
        a = torch.matmul(p, v)
        return self.to_out(a.transpose(1, 2).reshape(b, n, -1)), p.mean(1)


class TextEncoder(nn.Module):
    def __init__(self, hidden, max_length, heads=2, out_width=None):
        super().__init__()
        self.token_embedding = nn.Embedding(HASH_ROWS, hidden)
        self.position_embedding = nn.Parameter(torch.randn(max_length, hidden) * 0.5)
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = Attention(hidden, hidden, heads)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)
        self.final_ln = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, out_width) if out_width else None  # bad-hidden-size only
        causal = torch.triu(torch.ones(max_length, max_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal", causal)

    def forward(self, input_ids):
        L = input_ids.shape[1]
        x = self.token_embedding(torch.remainder(input_ids, HASH_ROWS)) + self.position_embedding[:L]
        h = self.ln1(x)
        x = x + self.attn(h, h, self.causal[:L, :L])
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        x = self.final_ln(x)
        if self.proj is not None:
            x = self.proj(x)
        return x


def timestep_embedding(t, dim):
    """diffusers get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0),
    computed in the default float dtype, no hard-coded casts (trace stays dtype-agnostic)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half) * (-math.log(10000.0) / half))
    args = t[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_dim, groups=8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Transformer2D(nn.Module):
    def __init__(self, ch, ctx_dim, heads=2, groups=8):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.proj_in = nn.Linear(ch, ch)
        self.ln1 = nn.LayerNorm(ch)
        self.attn1 = Attention(ch, ch, heads)
        self.ln2 = nn.LayerNorm(ch)
        self.attn2 = Attention(ch, ctx_dim, heads)
        self.ln3 = nn.LayerNorm(ch)
        self.ff1 = nn.Linear(ch, 4 * ch)
        self.ff2 = nn.Linear(4 * ch, ch)
        self.proj_out = nn.Linear(ch, ch)

    def forward(self, x, ctx):
        return self.forward_maps(x, ctx)[0]

    def forward_maps(self, x, ctx):
        """The output and the cross-attention probabilities averaged over heads, [b, hw, L]."""
        b, c, h, w = x.shape
        r = x
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))  # [b, hw, c]
        z = self.ln1(y)
        y = y + self.attn1(z, z)
        a, p = self.attn2.attend(self.ln2(y), ctx)
        y = y + a
        y = y + self.ff2(F.gelu(self.ff1(self.ln3(y))))
        y = self.proj_out(y)
        return y.transpose(1, 2).reshape(b, c, h, w) + r, p


class UNet(nn.Module):
    def __init__(self, latent_channels, ctx_dim, ch=32, out_channels=None):
        super().__init__()
        self.ch = ch
        temb = 4 * ch
        self.time_l1 = nn.Linear(ch, temb)
        self.time_l2 = nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        self.down_res = ResBlock(ch, ch, temb)
        self.down_attn = Transformer2D(ch, ctx_dim)
        self.downsample = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.mid_res = ResBlock(2 * ch, 2 * ch, temb)
        self.up_conv = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.up_res = ResBlock(2 * ch, ch, temb)
        self.up_attn = Transformer2D(ch, ctx_dim)
        self.norm_out = nn.GroupNorm(8, ch)
        self.conv_out = nn.Conv2d(ch, out_channels or latent_channels, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.forward_maps(sample, timestep, encoder_hidden_states)[0]

    # The layers whose cross-attention maps forward_maps averages (both at the latent size).
    MAP_LAYERS = ["down_attn.attn2", "up_attn.attn2"]

    def forward_maps(self, sample, timestep, encoder_hidden_states):
        """The noise and the cross-attention maps [B, L, h, w] of MAP_LAYERS, averaged over heads and layers."""
        t = timestep_embedding(timestep, self.ch).type_as(sample)
        temb = self.time_l2(F.silu(self.time_l1(t)))
        h = self.conv_in(sample)
        h, p0 = self.down_attn.forward_maps(self.down_res(h, temb), encoder_hidden_states)
        skip = h
        h = self.mid_res(self.downsample(h), temb)
        h = self.up_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up_res(torch.cat([h, skip], dim=1), temb)
        h, p1 = self.up_attn.forward_maps(h, encoder_hidden_states)
        B, _, H, W = sample.shape
        maps = ((p0 + p1) / 2).transpose(1, 2).reshape(B, -1, H, W)
        return self.conv_out(F.silu(self.norm_out(h))), maps


class UNetWithMaps(nn.Module):
    """The bundle UNet of format version 2: (noise, cross-attention maps). `maps_stride` > 1 makes
    deliberately wrong maps (pooled to a smaller size than model.json declares), for loader tests."""

    def __init__(self, unet, maps_stride=1):
        super().__init__()
        self.unet = unet
        self.maps_stride = maps_stride

    def forward(self, sample, timestep, encoder_hidden_states):
        noise, maps = self.unet.forward_maps(sample, timestep, encoder_hidden_states)
        if self.maps_stride > 1:
            maps = F.avg_pool2d(maps, self.maps_stride)
        return noise, maps


class VaeEncoder(nn.Module):
    def __init__(self, latent_channels, ch=16):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.downs = nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1) for _ in range(3)])
        self.norms = nn.ModuleList([nn.GroupNorm(4, ch) for _ in range(3)])
        self.conv_out = nn.Conv2d(ch, 2 * latent_channels, 3, padding=1)

    def forward(self, image):
        h = self.conv_in(image)
        for down, norm in zip(self.downs, self.norms):
            h = F.silu(norm(down(h)))
        return self.conv_out(h)


class VaeDecoder(nn.Module):
    def __init__(self, latent_channels, ch=16):
        super().__init__()
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        self.ups = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1) for _ in range(3)])
        self.norms = nn.ModuleList([nn.GroupNorm(4, ch) for _ in range(3)])
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, latents):
        h = self.conv_in(latents)
        for up, norm in zip(self.ups, self.norms):
            h = F.silu(norm(up(F.interpolate(h, scale_factor=2.0, mode="nearest"))))
        return self.conv_out(h)


# ----------------------------------------------------------------------------- helpers

def simple_ids(prompt, vocab, max_length, pad_id, bos=49406, eos=49407):
    """Whitespace 'tokenizer' good enough for common lowercase words (each is one CLIP token
    'word</w>'); used only for the prompt-sensitivity check here."""
    ids = [bos] + [vocab[w + "</w>"] for w in prompt.lower().split()] + [eos]
    ids = ids[:max_length]
    return torch.tensor([ids + [pad_id] * (max_length - len(ids))], dtype=torch.int64)


def _rescale_last(conv, out, target_std, bias_shift=None):
    """Scale conv (the module's last layer) so that `out` (its current output) gets std target."""
    s = out.std().item()
    with torch.no_grad():
        conv.weight.mul_(target_std / s)
        conv.bias.mul_(target_std / s)
        if bias_shift is not None:
            conv.bias.add_(bias_shift)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def build(args):
    torch.manual_seed(args.seed)
    C, D, L = args.latent_channels, args.hidden_size, args.max_length
    te = TextEncoder(D, L, out_width=D + 8 if args.variant == "bad-hidden-size" else None)
    unet = UNet(C, D, out_channels=C + 1 if args.variant == "bad-unet-channels" else None)
    venc = VaeEncoder(C)
    vdec = VaeDecoder(C)
    for m in (te, unet, venc, vdec):
        m.eval()
    with torch.no_grad():
        # Make prompts and timesteps matter: with default init the (diluted, 77-token) text
        # attention and the timestep injection are too weak to move the output much.
        te.attn.to_out.weight.mul_(PROMPT_GAIN)
        for blk in (unet.down_attn, unet.up_attn):
            blk.attn2.to_q.weight.mul_(2.0)
            blk.attn2.to_out.weight.mul_(PROMPT_GAIN)
        for rb in (unet.down_res, unet.mid_res, unet.up_res):
            rb.time_emb_proj.weight.mul_(TIME_GAIN)
            rb.time_emb_proj.bias.mul_(TIME_GAIN)
    g = torch.Generator().manual_seed(args.seed + 1)
    s = args.sample_size
    with torch.no_grad():
        # data-dependent output scaling (deterministic)
        ehs = torch.randn(2, L, D, generator=g)
        x = torch.randn(2, C, s, s, generator=g)
        t = torch.tensor([10, 900])
        _rescale_last(unet.conv_out, unet(x, t, ehs), 1.0)
        img = torch.rand(2, 3, 8 * s, 8 * s, generator=g) * 2 - 1
        out = venc(img)
        # mean half -> std 1/scalingFactor (so scaled latents are ~N(0, 1), as in SD);
        # logvar half -> std 0.5, centred at -2
        with torch.no_grad():
            sm, slv = out[:, :C].std().item(), out[:, C:].std().item()
            venc.conv_out.weight[:C].mul_(1.0 / SCALING / sm)
            venc.conv_out.bias[:C].mul_(1.0 / SCALING / sm)
            venc.conv_out.weight[C:].mul_(0.5 / slv)
            venc.conv_out.bias[C:].mul_(0.5 / slv)
            venc.conv_out.bias[C:].add_(-2.0 - venc(img)[:, C:].mean().item())
        _rescale_last(vdec.conv_out, vdec(torch.randn(2, C, s, s, generator=g) / SCALING), 0.4)
    return te, unet, venc, vdec


def report(te, unet, venc, vdec, args, vocab):
    C, D, L, s = args.latent_channels, args.hidden_size, args.max_length, args.sample_size
    g = torch.Generator().manual_seed(99)
    stats = {}
    with torch.no_grad():
        e_cat = te(simple_ids("a photo of a cat", vocab, L, args.pad_token_id))
        e_dog = te(simple_ids("a painting of a dog", vocab, L, args.pad_token_id))
        e_empty = te(simple_ids("", vocab, L, args.pad_token_id))
        stats["text_encoder std"] = e_cat.std().item()
        x = torch.randn(1, C, s, s, generator=g)
        t1, t2 = torch.tensor([500]), torch.tensor([100])
        if args.variant == "bad-hidden-size":
            e_cat, e_dog = torch.randn(1, L, D, generator=g), torch.randn(1, L, D, generator=g)
        u = unet(x, t1, e_cat)
        stats["unet std"] = u.std().item()
        stats["unet rel change cat->dog prompt"] = rel(unet(x, t1, e_dog), u)
        if args.variant != "bad-hidden-size":
            stats["unet rel change cat->empty prompt"] = rel(unet(x, t1, e_empty), u)
        stats["unet rel change t 500->100"] = rel(unet(x, t2, e_cat), u)
        stats["unet rel change t 500->501"] = rel(unet(x, torch.tensor([501]), e_cat), u)
        img = torch.rand(1, 3, 8 * s, 8 * s, generator=g) * 2 - 1
        ve = venc(img)
        stats["vae_encoder mean std (unscaled)"] = ve[:, :C].std().item()
        stats["vae_encoder mean std x scalingFactor"] = ve[:, :C].std().item() * SCALING
        stats["vae_encoder logvar mean"] = ve[:, C:].mean().item()
        stats["vae_encoder logvar std"] = ve[:, C:].std().item()
        dec = vdec(torch.randn(1, C, s, s, generator=g) / SCALING)
        stats["vae_decoder std"] = dec.std().item()
        stats["vae_decoder min"] = dec.min().item()
        stats["vae_decoder max"] = dec.max().item()
        stats["vae_decoder frac |x|>1"] = (dec.abs() > 1).float().mean().item()
    for k, v in stats.items():
        print("  %-36s %.4f" % (k, v))
    if args.variant == "ok":
        assert stats["unet rel change cat->dog prompt"] > 0.05, "UNet barely depends on the prompt"
        assert stats["unet rel change t 500->100"] > 0.05, "UNet barely depends on the timestep"
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-size", type=int, default=8)
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=77)
    p.add_argument("--prediction-type", choices=["epsilon", "v_prediction"], default="epsilon")
    p.add_argument("--pad-token-id", type=int, default=49407)
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--variant", choices=["ok", "bad-unet-channels", "bad-hidden-size", "bad-maps"], default="ok")
    p.add_argument("--attention-maps", action="store_true",
                   help="the UNet also returns its cross-attention maps (format version 2)")
    p.add_argument("--tokenizer-dir", default=DEFAULT_TOKENIZER)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    if args.sample_size % 8:
        p.error("--sample-size must be a multiple of 8")
    if args.hidden_size % 16:
        p.error("--hidden-size must be a multiple of 16")
    torch.set_num_threads(1)
    t0 = time.time()
    with open(os.path.join(args.tokenizer_dir, "vocab.json")) as f:
        vocab = json.load(f)
    te, unet, venc, vdec = build(args)
    print("output statistics (float32 eager):")
    stats = report(te, unet, venc, vdec, args, vocab)
    config = {
        "name": args.name or ("tiny-random-sd" + ("" if args.variant == "ok" else "-" + args.variant)),
        "sampleSize": args.sample_size,
        "latentChannels": args.latent_channels,
        "vaeScaleFactor": 8,
        "scalingFactor": SCALING,
        "predictionType": args.prediction_type,
        "scheduler": {"numTrainTimesteps": 1000, "betaSchedule": "scaled_linear", "betaStart": 0.00085,
                      "betaEnd": 0.012, "stepsOffset": 1, "setAlphaToOne": False, "timestepSpacing": "leading"},
        "textEncoder": {"maxLength": args.max_length, "hiddenSize": args.hidden_size, "bosTokenId": 49406,
                        "eosTokenId": 49407, "padTokenId": args.pad_token_id},
        "testBundle": {"generator": "scripts/make_test_bundle.py", "seed": args.seed, "variant": args.variant,
                       "tokenEmbeddingRows": HASH_ROWS, "stats": {k: round(v, 5) for k, v in stats.items()}},
    }
    if args.attention_maps or args.variant == "bad-maps":
        config["crossAttentionMaps"] = {"downsample": 1, "layers": list(UNet.MAP_LAYERS)}
        unet = UNetWithMaps(unet, maps_stride=2 if args.variant == "bad-maps" else 1)
    # UNet/VAE verification sizes: the default sizes (8, 16, 16x8) plus sampleSize.
    s = args.sample_size
    vl = [(1, 8, 8), (2, 16, 16), (3, 16, 8)]
    if s not in (8, 16):
        vl.append((1, s, s))
    bundle_writer.write_bundle(args.out_dir, te, unet, venc, vdec, config, args.tokenizer_dir, dtype=args.dtype,
                               check_config=args.variant == "ok", verify_latents=vl)
    print("done in %.1fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
