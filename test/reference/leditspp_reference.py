"""Independent plain-PyTorch reference for torchedit's LEDITS++ masks (Brack et al., "LEDITS++:
Limitless Image Editing using Text-to-Image Models", CVPR 2024, arXiv:2311.16711 §3.3): the
cross-attention mask M¹, the noise mask M², their intersection, and the user mask, inside the
LEDITS replay of ledits_reference.py (edit-friendly DDPM noise maps, SEGA recursion).

Written from the paper and diffusers' LEditsPPPipelineStableDiffusion.__call__ (its
LeditsAttentionStore / aggregate_attention, LeditsGaussianSmoothing and the masking branch), not
from torchedit's C++. Each UNet evaluation is a separate batch-1 call, so each concept's maps
come from its own call (torchedit batches ∅/target/concepts and slices the maps).
Run with /usr/bin/python3.

Usage:
  leditspp_reference.py edit BUNDLE INVERSION.safetensors OUT.safetensors < request.json
    request: as ledits_reference.py's edit, plus per concept "implicit_mask": "off" |
             "attention" | "intersect" and "token_count" (the concept's tokens without BOS/EOS),
             and "user_mask": nested list [1,1,h,w] in [0, 1] | null.
    writes "latents" [1,C,h,w] and "masks" [steps, concepts, h, w]: per replayed step, the mask
    each concept applied (times the user mask), averaged over latent channels; zeros before the
    concept's warm-up ends and after its cooldown.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from ledits_reference import FORMAT, Sega, encode, parse_concepts, posterior, step_delta  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402
from sd_reference import Bundle  # noqa: E402


def gaussian_kernel():
    """diffusers' LeditsGaussianSmoothing: kernel_size 3, sigma 0.5, written as it is there."""
    kernel_size, sigma = [3, 3], [0.5, 0.5]
    kernel = 1
    meshgrids = torch.meshgrid([torch.arange(size, dtype=torch.float32) for size in kernel_size], indexing="ij")
    for size, std, mgrid in zip(kernel_size, sigma, meshgrids):
        mean = (size - 1) / 2
        kernel *= 1 / (std * math.sqrt(2 * math.pi)) * torch.exp(-(((mgrid - mean) / (2 * std)) ** 2))
    kernel = kernel / torch.sum(kernel)
    return kernel.view(1, 1, *kernel.size())


def attention_mask(maps, token_count, threshold, latent_hw, channels):
    """M¹ from one concept's maps [1, L, a, b] (diffusers: out[:, :, :, 1:1 + num_edit_tokens],
    summed over tokens, reflect-padded smoothing, quantile threshold, nearest upsampling)."""
    attn_map = maps[0].permute(1, 2, 0).unsqueeze(0)  # diffusers' layout [1, a, b, L]
    attn_map = attn_map[:, :, :, 1:1 + token_count]
    assert attn_map.shape[3] == token_count
    attn_map = torch.sum(attn_map, dim=3)
    attn_map = F.pad(attn_map.unsqueeze(1), (1, 1, 1, 1), mode="reflect")
    attn_map = F.conv2d(attn_map, weight=gaussian_kernel()).squeeze(1)
    tmp = torch.quantile(attn_map.flatten(start_dim=1), threshold, dim=1)
    res = attn_map.shape[1:]
    attn_mask = torch.where(attn_map >= tmp.unsqueeze(1).unsqueeze(1).repeat(1, *res), 1.0, 0.0)
    return F.interpolate(attn_mask.unsqueeze(1), latent_hw).repeat(1, channels, 1, 1)


def noise_mask(psi, threshold, mode):
    """M²: {0, 1} where the guidance magnitude reaches its quantile (diffusers sums |ψ| over
    channels, 'sum'; SEGA's per-channel quantile is 'channel')."""
    C = psi.shape[1]
    if mode == "sum":
        score = torch.sum(torch.abs(psi), dim=1, keepdim=True).repeat(1, C, 1, 1)
    else:
        score = torch.abs(psi)
    tmp = torch.quantile(score.flatten(start_dim=2), threshold, dim=2, keepdim=False)
    return torch.where(score >= tmp[:, :, None, None], torch.ones_like(psi), torch.zeros_like(psi))


class LeditsPPSega(Sega):
    """SEGA's recursion (ledits_reference.Sega) with LEDITS++'s masks in place of SEGA's."""

    def __init__(self, concepts, momentum_scale, momentum_beta, mask_mode, user_mask, train_steps):
        super().__init__(concepts, momentum_scale, momentum_beta, mask_mode)
        self.user_mask = user_mask
        self.train_steps = train_steps

    def begin_step(self, i, t, maps, shape):
        self.i, self.t, self.maps = i, t, maps
        self.applied = torch.zeros(len(self.concepts), shape[2], shape[3])

    def mask_psi(self, c, psi):
        concept = self.concepts[c]
        if self.user_mask is not None:
            psi = psi * self.user_mask
        mode = concept["implicit_mask"]
        if mode == "off":
            mask = noise_mask(psi, concept["threshold"], self.mask_mode)
        else:
            mask = attention_mask(self.maps[c], concept["token_count"], concept["threshold"], psi.shape[-2:], psi.shape[1])
            # diffusers: `if t <= 800` (of 1000 training steps) the intersection, else M¹ alone
            if mode == "intersect" and self.t <= 0.8 * self.train_steps:
                mask = noise_mask(psi, concept["threshold"], self.mask_mode) * mask
        shown = mask * self.user_mask if self.user_mask is not None else mask
        if self.i >= concept["warmup"]:
            self.applied[c] = shown.mean(1)[0]
        return psi * mask


@torch.no_grad()
def edit(bundle, inv, inv_meta, req):
    if inv_meta.get("format") != FORMAT:
        raise ValueError("not a %s file (format=%r)" % (FORMAT, inv_meta.get("format")))
    settings = json.loads(inv_meta.get("settings", "{}"))
    eta = float(settings.get("eta", 1.0))
    ts = [int(t) for t in inv["timesteps"].tolist()]
    x0, xts, zs = inv["x0"].float(), inv["xts"].float(), inv["zs"].float()
    uncond = inv["uncond_embeddings"]
    T, delta, skip = len(ts), step_delta(bundle, ts), int(req["skip"])
    s_tar = float(req.get("guidance_scale", 15.0))
    target = encode(bundle, req["target_ids"]) if req.get("target_ids") else None
    concepts = parse_concepts(bundle, req)
    for c, spec in zip(concepts, req.get("concepts") or []):
        c["implicit_mask"] = spec.get("implicit_mask", "off")
        c["token_count"] = int(spec["token_count"])
    user = torch.tensor(req["user_mask"], dtype=torch.float32) if req.get("user_mask") is not None else None
    sega = LeditsPPSega(concepts, req.get("momentum_scale", 0.3), req.get("momentum_beta", 0.6),
                        req.get("mask_mode", "channel"), user, bundle.T)
    x = xts[skip].clone()
    masks = []
    for k in range(skip, T):
        t = ts[k]
        e_u = bundle.eps(x, t, uncond)
        noise_guidance = s_tar * (bundle.eps(x, t, target) - e_u) if target is not None else torch.zeros_like(e_u)
        if concepts:
            outs = [bundle.eps_and_maps(x, t, c["emb"]) for c in concepts]
            sega.begin_step(k - skip, t, [m for _, m in outs], x.shape)
            noise_guidance = sega.guidance(k - skip, e_u, [e for e, _ in outs], noise_guidance)
            masks.append(sega.applied)
        mu, sigma = posterior(bundle, x, e_u + noise_guidance, t, delta, eta)
        x = mu + sigma * zs[k]
        if user is not None:  # outside the user's mask: the inversion's own trajectory
            x = user * x + (1 - user) * (xts[k + 1] if k + 1 < T else x0)
    out = {"latents": x.contiguous()}
    if masks:
        out["masks"] = torch.stack(masks).contiguous()
    return out


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "edit":
        torch.set_num_threads(1)
        bundle = Bundle(sys.argv[2])
        inv, meta = load_file(sys.argv[3])
        save_file(edit(bundle, inv, meta, json.load(sys.stdin)), sys.argv[4])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
