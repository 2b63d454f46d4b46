"""Independent plain-PyTorch reference for torchedit's LEDITS: edit-friendly DDPM inversion
(Huberman-Spiegelglas et al., arXiv:2304.06140) + SEGA semantic guidance (Brack et al.,
arXiv:2301.12247), combined as in LEDITS (Tsaban & Passos, arXiv:2307.00522).

Written from the papers, docs/algorithms.md §0-3 and diffusers' reference pipelines
(deprecated SemanticStableDiffusionPipeline, LEditsPPPipelineStableDiffusion), not from
torchedit's C++. Every UNet evaluation is a separate batch-1 call, so a match with torchedit
(which batches ∅/source/target/concepts) also checks that batching changes nothing.
Run with /usr/bin/python3.

Usage:
  ledits_reference.py invert BUNDLE OUT.safetensors < request.json
    request: {"x0": null | nested list [1,C,h,w], "image_latents_file": safetensors with "x0",
              "source_ids": [[L ints]] | null, "uncond_ids": [[L ints]],
              "source_guidance_scale": 3.5, "steps": 100, "eta": 1.0, "seed": 0}
    writes the inversion file (format "torchedit-inversion", version "1"):
      x0 [1,C,h,w] f32, timesteps i64 [T] (descending), xts f32 [T,1,C,h,w] (after the drift
      overwrite), zs f32 [T,1,C,h,w] (zs[T-1] = z_1 kept), uncond_embeddings [1,L,D],
      source_embeddings [1,L,D] (only when a source prompt is given);
      metadata {"format", "version", "settings": JSON {"steps","eta","sourceGuidanceScale",
      "seed","sourcePrompt": null}}.
  ledits_reference.py edit BUNDLE INVERSION.safetensors OUT.safetensors < request.json
    request: {"target_ids": [[L ints]] | null, "guidance_scale": 15, "skip": 36,
              "concepts": [{"ids", "scale", "remove", "warmup", "cooldown", "threshold",
                            "weight"}], "momentum_scale": 0.1, "momentum_beta": 0.4,
              "mask_mode": "channel" | "sum"}
    writes tensor "latents" [1,C,h,w] (the edited x_0).
  ledits_reference.py selftest BUNDLE
    invariant checks on any weights (exact reconstruction, seed determinism, ...).

The SEGA recursion implemented (per edit step i = k - skip, after diffusers' SEGA pipeline):
  for each concept c:  warmed_c = i >= warmup_c
                       if cooldown_c is not None and i >= cooldown_c: psi_c = 0, w_c = 0
                       else psi_c = mask(scale_c * d_c * (eps_c - eps_uncond)), w_c = weight_c
  w_c <- nan_to_num(max(w_c, 0))
  if 0 < #warmed < #concepts and S = sum_{warmed} w_c > 0:
        guidance += sum_{c warmed} (w_c / S) * psi_c
  G = sum_c w_c * psi_c + momentum_scale * nu
  nu <- beta * nu + (1 - beta) * G                      (nu starts at 0)
  if #warmed == #concepts: guidance += G
"""
import json
import math
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
from safetensors_io import load_file, save_file  # noqa: E402
from _cli import run  # noqa: E402
from sd_reference import Bundle  # noqa: E402

FORMAT = "torchedit-inversion"
VERSION = "1"


# ---------------------------------------------------------------- shared pieces

def encode(bundle, ids):
    return bundle.text_encoder(torch.tensor(ids, dtype=torch.long))


def eps(bundle, x, t, states):
    """epsilon prediction (v -> eps conversion in Bundle.eps) for one conditioning."""
    if states.shape[0] != x.shape[0]:
        states = states.expand(x.shape[0], -1, -1)
    return bundle.eps(x, t, states)


def posterior(bundle, x, e, t, delta, eta):
    """DDIM posterior mean mu and std sigma for the step t -> t - delta (eta^2 form).

    x0_hat = (x - sqrt(1-a_t) e) / sqrt(a_t)
    v      = (1-a_prev)/(1-a_t) * (1 - a_t/a_prev),   sigma = eta sqrt(v)
    mu     = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) e
    a_prev below t = 0 is 1 if setAlphaToOne else alpha_bar_0 (Bundle.alpha_bar(-k)).
    """
    a_t = bundle.alpha_bar(t)
    a_prev = bundle.alpha_bar(t - delta)
    x0_hat = (x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
    v = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    sigma = eta * math.sqrt(max(v, 0.0))
    mu = math.sqrt(a_prev) * x0_hat + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * e
    return mu, sigma


def step_delta(bundle, timesteps):
    """Spacing Δ of a "leading" schedule; read off the two lowest timesteps (never clamped),
    which equals numTrain // T for schedules made by `timesteps(T)`."""
    if len(timesteps) >= 2:
        return int(timesteps[-2]) - int(timesteps[-1])
    return bundle.T // len(timesteps)


# ---------------------------------------------------------------- inversion

@torch.no_grad()
def invert(bundle, req):
    if req.get("x0") is not None:
        x0 = torch.tensor(req["x0"], dtype=torch.float32)
    else:
        tensors, _ = load_file(req["image_latents_file"])
        x0 = tensors["x0"].to(torch.float32)
    x0 = x0.contiguous()
    T = int(req.get("steps", 100))
    eta = float(req.get("eta", 1.0))
    s_src = float(req.get("source_guidance_scale", 3.5))
    seed = int(req.get("seed", 0))
    if T < 1:
        raise ValueError("steps must be >= 1")

    uncond = encode(bundle, req["uncond_ids"])
    source = encode(bundle, req["source_ids"]) if req.get("source_ids") else None

    ts = bundle.timesteps(T)  # descending, leading spacing + offset, clamped
    delta = bundle.T // T

    # 1. independent noisy latents, one draw per step, smallest t first
    generator = torch.Generator().manual_seed(seed)
    xts = torch.empty((T,) + tuple(x0.shape), dtype=torch.float32)
    for k in reversed(range(T)):
        noise = torch.randn(x0.shape, generator=generator)
        a = bundle.alpha_bar(ts[k])
        xts[k] = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise

    # 2. extract the noise maps, largest t first, overwriting the next x to remove drift
    zs = torch.empty_like(xts)
    for k in range(T):
        t = ts[k]
        x = xts[k]
        e = eps(bundle, x, t, uncond)
        if source is not None:
            e_src = eps(bundle, x, t, source)
            e = e + s_src * (e_src - e)
        mu, sigma = posterior(bundle, x, e, t, delta, eta)
        prev = xts[k + 1] if k < T - 1 else x0
        if sigma > 0:
            z = (prev - mu) / sigma
        else:  # eta = 0 (or a_prev = 1): no noise map can be defined; see report
            z = torch.zeros_like(mu)
        zs[k] = z
        if k < T - 1:
            xts[k + 1] = mu + sigma * z

    tensors = {
        "x0": x0,
        "timesteps": torch.tensor(ts, dtype=torch.int64),
        "xts": xts.contiguous(),
        "zs": zs.contiguous(),
        "uncond_embeddings": uncond.contiguous(),
    }
    if source is not None:
        tensors["source_embeddings"] = source.contiguous()
    settings = {"steps": T, "eta": eta, "sourceGuidanceScale": s_src, "seed": seed, "sourcePrompt": None}
    metadata = {"format": FORMAT, "version": VERSION, "settings": json.dumps(settings)}
    return tensors, metadata


# ---------------------------------------------------------------- SEGA

def threshold_mask(psi, threshold, mode):
    """Keep the entries of psi whose magnitude reaches the threshold-quantile.

    channel (SEGA): quantile of |psi| over H*W, per sample and per channel, keep |psi| >= q.
    sum (LEDITS++): s = sum_C |psi| (keepdim, repeated to C channels), quantile of s over H*W,
                    keep where s >= q."""
    C = psi.shape[1]
    if mode == "channel":
        score = psi.abs()
    elif mode == "sum":
        score = psi.abs().sum(dim=1, keepdim=True).repeat(1, C, 1, 1)
    else:
        raise ValueError("mask_mode must be 'channel' or 'sum', got %r" % (mode,))
    q = torch.quantile(score.flatten(start_dim=2).to(torch.float32), float(threshold), dim=2, keepdim=False)
    return torch.where(score >= q[:, :, None, None].to(score.dtype), psi, torch.zeros_like(psi))


def sanitize_weight(w):
    w = torch.tensor(float(w), dtype=torch.float32)
    w = torch.where(w < 0, torch.zeros_like(w), w)
    return torch.nan_to_num(w)


class Sega:
    def __init__(self, concepts, momentum_scale, momentum_beta, mask_mode):
        self.concepts = concepts
        self.momentum_scale = float(momentum_scale)
        self.beta = float(momentum_beta)
        self.mask_mode = mask_mode
        self.momentum = None

    def mask_psi(self, c, psi):
        """SEGA's mask of concept c's term (LEDITS++ replaces it: leditspp_reference.py)."""
        return threshold_mask(psi, self.concepts[c]["threshold"], self.mask_mode)

    def guidance(self, i, e_uncond, e_concepts, noise_guidance):
        """Return noise_guidance plus the SEGA term for edit step i; updates the momentum."""
        if self.momentum is None:
            self.momentum = torch.zeros_like(e_uncond)
        psis, weights, warm = [], [], []
        for c, (concept, e_c) in enumerate(zip(self.concepts, e_concepts)):
            if i >= concept["warmup"]:
                warm.append(c)  # counted as warmed up even when cooled down (as diffusers)
            if concept["cooldown"] is not None and i >= concept["cooldown"]:
                psis.append(torch.zeros_like(e_c))
                weights.append(torch.tensor(0.0))
                continue
            psi = e_c - e_uncond
            if concept["remove"]:
                psi = psi * -1
            psi = psi * concept["scale"]
            psis.append(self.mask_psi(c, psi))
            weights.append(sanitize_weight(concept["weight"]))

        n = len(self.concepts)
        if 0 < len(warm) < n:
            total = sum(weights[c] for c in warm)
            if float(total) > 0:  # diffusers divides by 0 here (NaN); we add nothing
                partial = None
                for c in warm:
                    term = (weights[c] / total) * psis[c]
                    partial = term if partial is None else partial + term
                noise_guidance = noise_guidance + partial

        g = None
        for w, psi in zip(weights, psis):
            term = w * psi
            g = term if g is None else g + term
        g = g + self.momentum_scale * self.momentum
        self.momentum = self.beta * self.momentum + (1 - self.beta) * g
        if len(warm) == n:
            noise_guidance = noise_guidance + g
        return noise_guidance


def parse_concepts(bundle, req):
    out = []
    for c in req.get("concepts") or []:
        out.append({
            "emb": encode(bundle, c["ids"]),
            "scale": float(c.get("scale", 5.0)),
            "remove": bool(c.get("remove", False)),
            "warmup": 10 if "warmup" not in c else (c["warmup"] or 0),
            "cooldown": c.get("cooldown"),
            "threshold": float(c.get("threshold", 0.9)),
            "weight": 1.0 if c.get("weight") is None else float(c["weight"]),
        })
    return out


# ---------------------------------------------------------------- edit

@torch.no_grad()
def edit(bundle, inv, inv_meta, req):
    if inv_meta.get("format") != FORMAT:
        raise ValueError("not a %s file (format=%r)" % (FORMAT, inv_meta.get("format")))
    settings = json.loads(inv_meta.get("settings", "{}"))
    eta = float(settings.get("eta", 1.0))
    ts = [int(t) for t in inv["timesteps"].tolist()]
    xts, zs = inv["xts"].to(torch.float32), inv["zs"].to(torch.float32)
    uncond = inv["uncond_embeddings"]
    T = len(ts)
    delta = step_delta(bundle, ts)
    skip = int(req.get("skip", 36))
    if not 0 <= skip < T:
        raise ValueError("skip must be in [0, %d), got %d" % (T, skip))
    s_tar = float(req.get("guidance_scale", 15.0))
    target = encode(bundle, req["target_ids"]) if req.get("target_ids") else None
    concepts = parse_concepts(bundle, req)
    sega = Sega(concepts, req.get("momentum_scale", 0.1), req.get("momentum_beta", 0.4),
                req.get("mask_mode", "channel")) if concepts else None

    x = xts[skip].clone()
    for k in range(skip, T):
        i = k - skip
        t = ts[k]
        e_u = eps(bundle, x, t, uncond)
        if target is not None:
            e_t = eps(bundle, x, t, target)
            noise_guidance = s_tar * (e_t - e_u)
        else:
            noise_guidance = torch.zeros_like(e_u)
        if sega is not None:
            e_cs = [eps(bundle, x, t, c["emb"]) for c in concepts]
            noise_guidance = sega.guidance(i, e_u, e_cs, noise_guidance)
        e = e_u + noise_guidance
        mu, sigma = posterior(bundle, x, e, t, delta, eta)
        x = mu + sigma * zs[k]
    return {"latents": x.contiguous()}


# ---------------------------------------------------------------- self-test

def padded(bundle, tokens):
    te = bundle.config["textEncoder"]
    L = te["maxLength"]
    ids = [te["bosTokenId"]] + tokens[: L - 2] + [te["eosTokenId"]]
    return [ids + [te["padTokenId"]] * (L - len(ids))]


def selftest(bundle_dir):
    bundle = Bundle(bundle_dir)
    cfg = bundle.config
    s = cfg["sampleSize"]
    x0 = torch.randn((1, cfg["latentChannels"], s, s), generator=torch.Generator().manual_seed(1234))
    uncond_ids = padded(bundle, [])
    source_ids = padded(bundle, [320, 1125, 539, 320, 2368])  # "a photo of a cat"
    other_ids = padded(bundle, [320, 1125, 539, 320, 1929])  # "a photo of a dog"
    steps, s_src = 20, 3.5
    ok = True
    tmp = tempfile.mkdtemp(prefix="ledits_selftest_")

    def check(name, value, limit):
        nonlocal ok
        good = value <= limit
        ok = ok and good
        print("%-62s %.3e  (limit %.0e)  %s" % (name, value, limit, "ok" if good else "FAIL"))

    def roundtrip(tensors, meta, name):
        path = os.path.join(tmp, name)
        save_file(tensors, path, meta)
        return load_file(path)

    lat = os.path.join(tmp, "x0.safetensors")
    save_file({"x0": x0}, lat)
    base = {"image_latents_file": lat, "uncond_ids": uncond_ids, "source_guidance_scale": s_src,
            "steps": steps, "eta": 1.0, "seed": 0}
    invs = {}
    for label, src in (("no source", None), ("source", source_ids)):
        inv, meta = roundtrip(*invert(bundle, dict(base, source_ids=src)), "inv_%s.safetensors" % label)
        invs[label] = (inv, meta)
        for skip in (0, 5):
            out = edit(bundle, inv, meta, {"target_ids": src, "guidance_scale": s_src, "skip": skip, "concepts": []})
            check("I1 reconstruction, %s, skip %d: max|x0' - x0|" % (label, skip),
                  (out["latents"] - x0).abs().max().item(), 1e-4)

    # I3: same seed -> bit-identical xts, zs; different seed -> different zs, still exact
    inv2, _ = invert(bundle, dict(base, source_ids=source_ids))
    inv1 = invs["source"][0]
    same = torch.equal(inv1["zs"], inv2["zs"]) and torch.equal(inv1["xts"], inv2["xts"])
    print("%-62s %s" % ("I3 same seed -> bit-identical zs and xts", "ok" if same else "FAIL"))
    ok = ok and same
    inv3, meta3 = invert(bundle, dict(base, source_ids=source_ids, seed=1))
    differ = (inv1["zs"] - inv3["zs"]).abs().max().item()
    print("%-62s %.3e  %s" % ("I3 different seed: max|zs(seed 0) - zs(seed 1)|", differ, "ok" if differ > 1e-3 else "FAIL"))
    ok = ok and differ > 1e-3
    out = edit(bundle, inv3, meta3, {"target_ids": source_ids, "guidance_scale": s_src, "skip": 0, "concepts": []})
    check("I3 different seed still exact: max|x0' - x0|", (out["latents"] - x0).abs().max().item(), 1e-4)

    # I2: empty source prompt -> inversion independent of s_src
    inv4, _ = invert(bundle, dict(base, source_ids=None, source_guidance_scale=9.0))
    same = torch.equal(invs["no source"][0]["zs"], inv4["zs"])
    print("%-62s %s" % ("I2 empty source: zs independent of s_src", "ok" if same else "FAIL"))
    ok = ok and same

    # format
    inv, meta = invs["source"]
    shapes_ok = (inv["timesteps"].dtype == torch.int64 and list(inv["xts"].shape) == [steps] + list(x0.shape)
                 and list(inv["zs"].shape) == [steps] + list(x0.shape) and torch.equal(inv["x0"], x0)
                 and "source_embeddings" in inv and "source_embeddings" not in invs["no source"][0]
                 and meta["format"] == FORMAT and meta["version"] == VERSION
                 and json.loads(meta["settings"])["steps"] == steps
                 and inv["zs"][-1].abs().max().item() > 0)
    print("%-62s %s" % ("inversion file format (shapes, dtypes, metadata, z_1 kept)", "ok" if shapes_ok else "FAIL"))
    ok = ok and shapes_ok

    # SEGA sanity: all concept scales 0 -> same as no concepts; a real concept changes the result
    plain = edit(bundle, inv, meta, {"target_ids": source_ids, "guidance_scale": s_src, "skip": 5, "concepts": []})
    for mode in ("channel", "sum"):
        zero = edit(bundle, inv, meta, {"target_ids": source_ids, "guidance_scale": s_src, "skip": 5, "mask_mode": mode,
                                        "concepts": [{"ids": other_ids, "scale": 0.0, "warmup": 2}]})
        check("SEGA %s, scale 0: max|out - plain|" % mode, (zero["latents"] - plain["latents"]).abs().max().item(), 0.0)
        real = edit(bundle, inv, meta, {"target_ids": None, "guidance_scale": s_src, "skip": 5, "mask_mode": mode,
                                        "momentum_scale": 0.3, "momentum_beta": 0.6,
                                        "concepts": [{"ids": other_ids, "scale": 7.0, "warmup": 2, "threshold": 0.95},
                                                     {"ids": source_ids, "scale": 5.0, "remove": True, "warmup": 4,
                                                      "cooldown": 10, "weight": 0.5}]})
        d = (real["latents"] - x0).abs().max().item()
        finite = bool(torch.isfinite(real["latents"]).all())
        good = finite and d > 1e-3
        print("%-62s %.3e  %s" % ("SEGA %s, two concepts: finite, max|out - x0|" % mode, d, "ok" if good else "FAIL"))
        ok = ok and good
    print("selftest", "PASSED" if ok else "FAILED")
    return ok


# ---------------------------------------------------------------- CLI

def main():
    run(__doc__, invert, edit, selftest)


if __name__ == "__main__":
    main()
