"""Independent plain-PyTorch reference for torchedit's LEDITS++ inversion: edit-friendly
SDE-DPM-Solver++(2M) inversion and its replay (Brack et al., "LEDITS++", arXiv:2311.16711;
Lu et al., "DPM-Solver++", arXiv:2211.01095).

Written from the papers and diffusers' formulas (DPMSolverMultistepScheduler with
algorithm_type="sde-dpmsolver++", solver_order=2, solver_type="midpoint", and
LEditsPPPipelineStableDiffusion.invert / compute_noise_sde_dpm_pp_2nd), not from torchedit's
C++. It keeps diffusers' parameterisation: the VE sigma s = sqrt((1 - abar)/abar), then
alpha = 1/sqrt(s^2 + 1), sigma = s * alpha, lambda = log(alpha) - log(sigma), in float64.

Where torchedit departs from diffusers (docs/algorithms.md §8), so does this reference:
  - the final sigma is diffusers' final_sigmas_type="sigma_min" (abar_0), not "zero": the last
    step keeps a nonzero noise coefficient, so its z is defined and the replay is exact;
  - no lower_order_final: the replay makes the steps the inversion made (first order at the
    first inverted step, second order after it, the last step included);
  - the source prompt guides towards the source (diffusers' invert swaps the embeddings);
  - a replay from an edit-time skip k > 0 needs the history D_{k-1}: here it is recomputed with
    one UNet evaluation at xts[k-1] with the inversion's source guidance (torchedit derives it
    algebraically from the stored latents and maps; both give the inversion's D_{k-1}).
Every UNet evaluation is a separate batch-1 call. Run with /usr/bin/python3.

Usage:
  dpm_reference.py invert BUNDLE OUT.safetensors < request.json
    request: {"image_latents_file": safetensors with "x0", "source_ids": [[L]] | null,
              "uncond_ids": [[L]], "source_guidance_scale", "steps", "skip_noisiest", "seed"}
    writes an inversion file as torchedit's (format "torchedit-inversion", version "1"), with
    settings {"scheduler": "dpmsolver++", "steps", "skipNoisiest", "eta": 1, "sourceGuidanceScale", "seed"}.
  dpm_reference.py edit BUNDLE INVERSION.safetensors OUT.safetensors < request.json
    request as ledits_reference.py's edit (target_ids, guidance_scale, skip, concepts, momentum_*,
    mask_mode); writes tensor "latents".
  dpm_reference.py selftest BUNDLE
"""
import json
import math
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from safetensors_io import load_file, save_file  # noqa: E402
from _cli import run  # noqa: E402
from sd_reference import Bundle  # noqa: E402
from ledits_reference import FORMAT, VERSION, Sega, encode, eps, padded, parse_concepts  # noqa: E402


class SdeDpmSolverPP:
    """SDE-DPM-Solver++(2M), midpoint, over the last `steps` timesteps of a schedule of
    int(steps * (1 + skip_noisiest)) steps, spaced as DPMSolverMultistepScheduler.set_timesteps."""

    def __init__(self, bundle, steps, skip_noisiest):
        s = bundle.config["scheduler"]
        T, offset, spacing = bundle.T, s["stepsOffset"], s["timestepSpacing"]
        n = int(steps * (1 + skip_noisiest))  # diffusers' LEDITS++ invert
        if spacing == "leading":
            ratio = T // (n + 1)
            ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].astype(np.int64) + offset
        elif spacing == "linspace":
            ts = np.linspace(0, T - 1, n + 1).round()[::-1][:-1].astype(np.int64)
        elif spacing == "trailing":
            ts = np.arange(T, 0, -T / n).round().astype(np.int64)[:n] - 1
        else:
            raise ValueError(spacing)
        self.timesteps = [int(t) for t in ts[-steps:]]
        abar = bundle.alphas_cumprod.double()
        ve = [math.sqrt((1 - float(abar[t])) / float(abar[t])) for t in self.timesteps]
        ve.append(math.sqrt((1 - float(abar[0])) / float(abar[0])))  # final_sigmas_type "sigma_min"
        self.alpha = [1 / math.sqrt(v * v + 1) for v in ve]
        self.sigma = [v * a for v, a in zip(ve, self.alpha)]
        self.lam = [math.log(a) - math.log(s_) for a, s_ in zip(self.alpha, self.sigma)]
        self.history = None  # (step index, data prediction)

    def x0_pred(self, k, x, e):
        return (x - self.sigma[k] * e) / self.alpha[k]

    def mean_std(self, k, x, e):
        """sde-dpmsolver++ first order (k == 0) or 2M midpoint update from step k, without noise."""
        m0 = self.x0_pred(k, x, e)
        h = self.lam[k + 1] - self.lam[k]
        a_t, s_t, s_s0 = self.alpha[k + 1], self.sigma[k + 1], self.sigma[k]
        mean = (s_t / s_s0 * math.exp(-h)) * x + (a_t * (1 - math.exp(-2.0 * h))) * m0
        if k > 0:
            j, m1 = self.history
            assert j == k - 1, "steps out of order"
            h_0 = self.lam[k] - self.lam[k - 1]
            r0 = h_0 / h
            d1 = (1.0 / r0) * (m0 - m1)
            mean = mean + 0.5 * (a_t * (1 - math.exp(-2.0 * h))) * d1
        self.history = (k, m0)
        return mean, s_t * math.sqrt(1.0 - math.exp(-2 * h))


def guided_eps(bundle, x, t, uncond, source, s_src):
    e = eps(bundle, x, t, uncond)
    if source is not None:
        e = e + s_src * (eps(bundle, x, t, source) - e)
    return e


@torch.no_grad()
def invert(bundle, req):
    x0 = load_file(req["image_latents_file"])[0]["x0"].to(torch.float32).contiguous()
    steps = int(req.get("steps", 50))
    skip_noisiest = float(req.get("skip_noisiest", 0.15))
    s_src = float(req.get("source_guidance_scale", 3.5))
    seed = int(req.get("seed", 0))
    uncond = encode(bundle, req["uncond_ids"])
    source = encode(bundle, req["source_ids"]) if req.get("source_ids") else None
    solver = SdeDpmSolverPP(bundle, steps, skip_noisiest)
    ts = solver.timesteps

    # independent noisy latents, one draw per inverted timestep, smallest t first
    generator = torch.Generator().manual_seed(seed)
    xts = torch.empty((steps,) + tuple(x0.shape), dtype=torch.float32)
    for k in reversed(range(steps)):
        noise = torch.randn(x0.shape, generator=generator)
        xts[k] = solver.alpha[k] * x0 + solver.sigma[k] * noise

    zs = torch.empty_like(xts)
    for k in range(steps):
        e = guided_eps(bundle, xts[k], ts[k], uncond, source, s_src)
        mean, std = solver.mean_std(k, xts[k], e)
        target = xts[k + 1] if k < steps - 1 else x0
        zs[k] = (target - mean) / std
        if k < steps - 1:
            xts[k + 1] = mean + std * zs[k]

    tensors = {"x0": x0, "timesteps": torch.tensor(ts, dtype=torch.int64), "xts": xts.contiguous(),
               "zs": zs.contiguous(), "uncond_embeddings": uncond.contiguous()}
    if source is not None:
        tensors["source_embeddings"] = source.contiguous()
    settings = {"scheduler": "dpmsolver++", "steps": steps, "skipNoisiest": skip_noisiest, "eta": 1,
                "sourceGuidanceScale": s_src, "seed": str(seed), "sourcePrompt": ""}
    return tensors, {"format": FORMAT, "version": VERSION, "settings": json.dumps(settings)}


@torch.no_grad()
def edit(bundle, inv, inv_meta, req):
    settings = json.loads(inv_meta["settings"])
    if settings.get("scheduler") != "dpmsolver++":
        raise ValueError("not a DPM-Solver++ inversion")
    solver = SdeDpmSolverPP(bundle, int(settings["steps"]), float(settings["skipNoisiest"]))
    ts = solver.timesteps
    if ts != [int(t) for t in inv["timesteps"].tolist()]:
        raise ValueError("timesteps differ: %s vs %s" % (ts, inv["timesteps"].tolist()))
    xts, zs, uncond = inv["xts"].to(torch.float32), inv["zs"].to(torch.float32), inv["uncond_embeddings"]
    T = len(ts)
    skip = int(req.get("skip", 0))
    if not 0 <= skip < T:
        raise ValueError("skip out of range")
    if skip > 0:  # the inversion's own data prediction at step skip - 1 (see the module doc)
        e = guided_eps(bundle, xts[skip - 1], ts[skip - 1], uncond, inv.get("source_embeddings"),
                       float(settings["sourceGuidanceScale"]))
        solver.history = (skip - 1, solver.x0_pred(skip - 1, xts[skip - 1], e))
    s_tar = float(req.get("guidance_scale", 15.0))
    target = encode(bundle, req["target_ids"]) if req.get("target_ids") else None
    concepts = parse_concepts(bundle, req)
    sega = Sega(concepts, req.get("momentum_scale", 0.0), req.get("momentum_beta", 0.6),
                req.get("mask_mode", "sum")) if concepts else None
    x = xts[skip].clone()
    for k in range(skip, T):
        t = ts[k]
        e_u = eps(bundle, x, t, uncond)
        noise_guidance = s_tar * (eps(bundle, x, t, target) - e_u) if target is not None else torch.zeros_like(e_u)
        if sega is not None:
            noise_guidance = sega.guidance(k - skip, e_u, [eps(bundle, x, t, c["emb"]) for c in concepts], noise_guidance)
        mean, std = solver.mean_std(k, x, e_u + noise_guidance)
        x = mean + std * zs[k]
    return {"latents": x.contiguous()}


def selftest(bundle_dir):
    bundle = Bundle(bundle_dir)
    cfg = bundle.config
    s = cfg["sampleSize"]
    x0 = torch.randn((1, cfg["latentChannels"], s, s), generator=torch.Generator().manual_seed(1234))
    tmp = tempfile.mkdtemp(prefix="dpm_selftest_")
    lat = os.path.join(tmp, "x0.safetensors")
    save_file({"x0": x0}, lat)
    source_ids = padded(bundle, [320, 1125, 539, 320, 2368])
    ok = True
    for label, src in (("no source", None), ("source", source_ids)):
        for skip_noisiest in (0.0, 0.15, 0.5):
            inv, meta = invert(bundle, {"image_latents_file": lat, "uncond_ids": padded(bundle, []), "source_ids": src,
                                        "source_guidance_scale": 3.5, "steps": 8, "skip_noisiest": skip_noisiest,
                                        "seed": 0})
            for skip in (0, 3):
                out = edit(bundle, inv, meta, {"target_ids": src, "guidance_scale": 3.5, "skip": skip})
                d = (out["latents"] - x0).abs().max().item()
                good = d <= 1e-4
                ok = ok and good
                print("%-60s %.3e %s" % ("reconstruction, %s, skipNoisiest %.2f, skip %d" % (label, skip_noisiest, skip),
                                         d, "ok" if good else "FAIL"))
    print("selftest", "PASSED" if ok else "FAILED")
    return ok


def main():
    run(__doc__, invert, edit, selftest)


if __name__ == "__main__":
    main()
