"""Independent plain-PyTorch reference for torchedit's pipelines, run with /usr/bin/python3.

Written from the papers and diffusers' DDIMScheduler/StableDiffusionPipeline, not from
torchedit's C++: the conditional and unconditional UNet passes are two separate calls, so a
match also shows that torchedit's batched CFG changes nothing.

Usage: sd_reference.py txt2img BUNDLE_DIR OUT.safetensors < request.json
  request: {"ids": [[...]], "negative_ids": [[...]], "steps", "guidance_scale", "eta", "seed",
            "latent_height", "latent_width"}
  writes tensors "latents" [B, C, h, w] and "initial" (the initial noise).
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from safetensors_io import save_file  # noqa: E402


class Bundle:
    def __init__(self, path):
        with open(os.path.join(path, "model.json")) as f:
            self.config = json.load(f)
        load = lambda name: torch.jit.load(os.path.join(path, name)).eval()
        self.text_encoder = load("text_encoder.pt")
        self.unet = load("unet.pt")
        s = self.config["scheduler"]
        T = s["numTrainTimesteps"]
        if s["betaSchedule"] == "scaled_linear":
            betas = torch.linspace(s["betaStart"] ** 0.5, s["betaEnd"] ** 0.5, T, dtype=torch.float32) ** 2
        else:
            betas = torch.linspace(s["betaStart"], s["betaEnd"], T, dtype=torch.float32)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = 1.0 if s["setAlphaToOne"] else float(self.alphas_cumprod[0])
        self.T = T
        self.offset = s["stepsOffset"]

    def alpha_bar(self, t):
        return float(self.alphas_cumprod[t]) if t >= 0 else self.final_alpha_cumprod

    def timesteps(self, n):
        ratio = self.T // n  # "leading" spacing
        return [min(k * ratio + self.offset, self.T - 1) for k in reversed(range(n))]

    def eps(self, x, t, states):
        return self.eps_and_maps(x, t, states)[0]

    def eps_and_maps(self, x, t, states):
        """epsilon and, for a format-2 bundle (model.json crossAttentionMaps), the UNet's
        cross-attention maps [B, L, h/d, w/d] (None otherwise)."""
        out = self.unet(x, torch.full((x.shape[0],), t, dtype=torch.long), states)
        maps = None
        if isinstance(out, tuple):
            out, maps = out
        if self.config["predictionType"] == "v_prediction":
            a = self.alpha_bar(t)
            out = math.sqrt(a) * out + math.sqrt(1 - a) * x
        return out, maps

    def ddim_step(self, x, eps, t, n, eta, generator):
        # DDIM, arXiv:2010.02502 eq. (12), variance eq. (16)
        a_t = self.alpha_bar(t)
        a_prev = self.alpha_bar(t - self.T // n)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        sigma = eta * math.sqrt(max(variance, 0.0))
        prev = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
        if eta > 0:
            prev = prev + sigma * torch.randn(x.shape, generator=generator)
        return prev


@torch.no_grad()
def txt2img(bundle, req):
    cond = bundle.text_encoder(torch.tensor(req["ids"], dtype=torch.long))
    uncond = bundle.text_encoder(torch.tensor(req["negative_ids"], dtype=torch.long))
    generator = torch.Generator().manual_seed(req["seed"])
    shape = (cond.shape[0], bundle.config["latentChannels"], req["latent_height"], req["latent_width"])
    latents = torch.randn(shape, generator=generator)
    initial = latents.clone()
    n = req["steps"]
    for t in bundle.timesteps(n):
        if req["guidance_scale"] > 1:
            e_u = bundle.eps(latents, t, uncond.expand_as(cond))
            e_c = bundle.eps(latents, t, cond)
            eps = e_u + req["guidance_scale"] * (e_c - e_u)
        else:
            eps = bundle.eps(latents, t, cond)
        latents = bundle.ddim_step(latents, eps, t, n, req["eta"], generator)
    return {"latents": latents.contiguous(), "initial": initial.contiguous()}


def main():
    torch.set_num_threads(1)
    command, bundle_dir, out = sys.argv[1:4]
    req = json.load(sys.stdin)
    bundle = Bundle(bundle_dir)
    result = {"txt2img": txt2img}[command](bundle, req)
    save_file(result, out)


if __name__ == "__main__":
    main()
