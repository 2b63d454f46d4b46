"""The Python side of torchedit's benchmark: every workload written the way a PyTorch user would
write it over the bundle's TorchScript files -- eager Python, torch.jit.load, torch.no_grad() for
inference, classifier-free guidance and LEDITS/SEGA in ONE batched UNet call per step, Adam and
autograd for Imagic, default settings everywhere, DDIM/DDPM math inline. It computes the same
algorithm as torchedit (README "Text-to-image", "LEDITS", "Imagic"; docs/algorithms.md) with the same
seeds and draw order, so both sides do the same work; it is not an oracle (test/reference/ is).

Run with /usr/bin/python3 (Debian's torch, the same libtorch torchedit links):

  python3 bench/python/workloads.py --bundle DIR --workload txt2img [--runs N] [--threads T]
      [--spec JSON] [--warmup-spec JSON]

--spec is the workload's settings as bench/workloads.ts makes them (the harness always passes
them, so both sides get the same); without it, --workload picks the defaults below. Each process
loads the bundle, runs one warm-up job (--warmup-spec, or the spec with fewer steps and other
prompts), then N measured jobs, printing one JSON line per measured job on stdout:
  {"side": "python", "workload", "wallSeconds", "unetCalls", "unetSamples", "minorFaults",
   "majorFaults", "maxRssKB", "checksum", "threads", "phases": {name: {"wallSeconds", "minorFaults",
   "majorFaults", "maxRssKB", "unetCalls"}} (Imagic only)}
Page faults are resource.getrusage(RUSAGE_SELF) deltas over the job (all threads of the
process); maxRssKB is ru_maxrss, the process's peak so far (so a fresh process per measured job
gives the job's peak; the harness does that).
"""
import argparse
import copy
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "reference"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from clip_tokenizer import SimpleTokenizer  # noqa: E402  (stands in for transformers' CLIPTokenizer)
from safetensors_io import load_file  # noqa: E402

# The same settings as bench/workloads.ts (full mode); the harness passes them explicitly.
DEFAULTS = {
    "txt2img": {"kind": "txt2img", "prompt": "a red circle on a blue background", "negativePrompt": "",
                "steps": 20, "guidanceScale": 7.5, "seed": 1},
    "invert": {"kind": "invert", "sourcePrompt": "a red circle on a blue background", "sourceGuidanceScale": 3.5,
               "steps": 50, "eta": 1.0, "seed": 0},
    "imagic": {"kind": "imagic", "targetPrompt": "a red square on a blue background",
               "embedding": {"steps": 10, "lr": 2e-3}, "finetune": {"steps": 10, "lr": 5e-7}, "seed": 0},
}  # edits need an inversion file: give them as --spec (see bench/workloads.ts EditSpec)


# ----------------------------------------------------------------------------- the model

class StableDiffusion:
    """What a user sets up once: the four TorchScript modules, the tokenizer, the schedule."""

    def __init__(self, path):
        with open(os.path.join(path, "model.json")) as f:
            self.config = json.load(f)
        load = lambda name: torch.jit.load(os.path.join(path, name)).eval()
        self.text_encoder = load("text_encoder.pt")
        self.unet_module = load("unet.pt")
        self.vae_encoder = load("vae_encoder.pt")
        self.vae_decoder = load("vae_decoder.pt")
        self.tokenizer = SimpleTokenizer(os.path.join(path, "tokenizer"))
        s = self.config["scheduler"]
        self.T = s["numTrainTimesteps"]
        if s["betaSchedule"] == "scaled_linear":
            betas = torch.linspace(s["betaStart"] ** 0.5, s["betaEnd"] ** 0.5, self.T, dtype=torch.float32) ** 2
        else:
            betas = torch.linspace(s["betaStart"], s["betaEnd"], self.T, dtype=torch.float32)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).tolist()
        self.final_alpha_cumprod = 1.0 if s["setAlphaToOne"] else self.alphas_cumprod[0]
        self.offset = s["stepsOffset"]
        self.scaling = self.config["scalingFactor"]
        self.unet_calls = 0
        self.unet_samples = 0
        with torch.no_grad():
            self.empty = self.encode([""])  # the unconditional states, computed once

    def alpha_bar(self, t):
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def timesteps(self, n):
        ratio = self.T // n  # "leading" spacing, as diffusers' DDIMScheduler for SD
        return [min(k * ratio + self.offset, self.T - 1) for k in reversed(range(n))]

    def encode(self, prompts):
        te = self.config["textEncoder"]
        L = te["maxLength"]
        rows = []
        for p in prompts:
            ids = [te["bosTokenId"]] + self.tokenizer.encode(p) + [te["eosTokenId"]]
            if len(ids) > L:
                ids = ids[:L]
                ids[-1] = te["eosTokenId"]
            rows.append(ids + [te["padTokenId"]] * (L - len(ids)))
        return self.text_encoder(torch.tensor(rows, dtype=torch.long))

    def unet(self, x, t, states, module=None):
        self.unet_calls += 1
        self.unet_samples += x.shape[0]
        out = (module or self.unet_module)(x, torch.full((x.shape[0],), t, dtype=torch.long), states)
        if isinstance(out, tuple):  # a format-2 bundle: (noise, cross-attention maps)
            out = out[0]
        if self.config["predictionType"] == "v_prediction":
            a = self.alpha_bar(t)
            out = math.sqrt(a) * out + math.sqrt(1 - a) * x
        return out

    def encode_image(self, image):
        C = self.config["latentChannels"]
        return self.vae_encoder(image)[:, :C] * self.scaling

    def decode(self, latents):
        return (self.vae_decoder(latents / self.scaling) / 2 + 0.5).clamp(0, 1)

    def ddim(self, x, eps, t, n, eta):
        """DDIM posterior for t -> t - T//n (arXiv:2010.02502 eqs. (12), (16)): (mean, sigma)."""
        a_t = self.alpha_bar(t)
        a_prev = self.alpha_bar(t - self.T // n)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        sigma = eta * math.sqrt(max(variance, 0.0))
        mean = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
        return mean, sigma


def bench_image(size):
    """The deterministic input image of every workload, [1, 3, size, size] in [-1, 1]; the same
    formula as bench/workloads.ts (a few smooth stripes and a disc)."""
    y = torch.arange(size, dtype=torch.float64)[:, None] / size
    x = torch.arange(size, dtype=torch.float64)[None, :] / size
    channels = []
    for c in range(3):
        v = 0.6 * torch.sin(2 * math.pi * ((c + 1) * x + (2 - c) * y)) + 0.3 * torch.cos(2 * math.pi * 3 * x * y)
        disc = ((x - 0.5) ** 2 + (y - 0.45) ** 2) < 0.08
        v = torch.where(disc, torch.full_like(v, 0.9 - 0.6 * c), v)
        channels.append(v)
    return torch.stack(channels)[None].to(torch.float32)


# ----------------------------------------------------------------------------- workloads

@torch.no_grad()
def txt2img(m, s):
    cond = m.encode([s["prompt"]])
    uncond = m.empty if s.get("negativePrompt", "") == "" else m.encode([s["negativePrompt"]])
    h = w = s.get("latentSize") or m.config["sampleSize"]
    generator = torch.Generator().manual_seed(s["seed"])
    latents = torch.randn((1, m.config["latentChannels"], h, w), generator=generator)
    states = torch.cat([uncond, cond])
    n, g = s["steps"], s["guidanceScale"]
    for t in m.timesteps(n):
        eps_uncond, eps_cond = m.unet(torch.cat([latents] * 2), t, states).chunk(2)
        eps = eps_uncond + g * (eps_cond - eps_uncond)
        latents, _ = m.ddim(latents, eps, t, n, 0.0)
    return m.decode(latents), latents


@torch.no_grad()
def invert(m, s):
    size = (s.get("latentSize") or m.config["sampleSize"]) * m.config.get("vaeScaleFactor", 8)
    x0 = m.encode_image(bench_image(size))
    uncond = m.empty
    source = m.encode([s["sourcePrompt"]]) if s.get("sourcePrompt") else None
    n, eta, s_src = s["steps"], s.get("eta", 1.0), s.get("sourceGuidanceScale", 3.5)
    ts = m.timesteps(n)
    generator = torch.Generator().manual_seed(s["seed"])
    # 1. x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise_t, independent draws, smallest t first
    xts = [None] * n
    for k in reversed(range(n)):
        a = m.alpha_bar(ts[k])
        xts[k] = math.sqrt(a) * x0 + math.sqrt(1 - a) * torch.randn(x0.shape, generator=generator)
    # 2. noise maps z_t, largest t first, overwriting x_{t-1} with what sampling will compute
    zs = [None] * n
    states = uncond if source is None else torch.cat([uncond, source])
    for k in range(n):
        t = ts[k]
        if source is None:
            eps = m.unet(xts[k], t, states)
        else:
            eps_uncond, eps_src = m.unet(torch.cat([xts[k]] * 2), t, states).chunk(2)
            eps = eps_uncond + s_src * (eps_src - eps_uncond)
        mean, sigma = m.ddim(xts[k], eps, t, n, eta)
        prev = xts[k + 1] if k + 1 < n else x0
        zs[k] = (prev - mean) / sigma
        if k + 1 < n:
            xts[k + 1] = mean + sigma * zs[k]
    return {"x0": x0, "timesteps": torch.tensor(ts), "xts": torch.stack(xts), "zs": torch.stack(zs),
            "uncond_embeddings": uncond, "source_embeddings": source}


def sega_mask(psi, threshold, mode):
    magnitude = psi.abs()
    if mode == "sum":
        magnitude = magnitude.sum(dim=1, keepdim=True).expand_as(psi)
    q = torch.quantile(magnitude.flatten(start_dim=2), threshold, dim=2)
    return torch.where(magnitude >= q[:, :, None, None], psi, torch.zeros_like(psi))


@torch.no_grad()
def edit(m, s, inversion):
    xts, zs, ts = inversion["xts"], inversion["zs"], [int(t) for t in inversion["timesteps"].tolist()]
    n, skip, eta = len(ts), s["skip"], s.get("eta", 1.0)
    concepts = s.get("concepts") or []
    target = s.get("targetPrompt") or None
    parts = [inversion["uncond_embeddings"]]
    if target:
        parts.append(m.encode([target]))
    if concepts:
        parts.append(m.encode([c["prompt"] for c in concepts]))
    states = torch.cat(parts)
    batch, count = states.shape[0], len(concepts)
    g, s_m, beta, mode = s.get("guidanceScale", 15.0), s.get("momentumScale", 0.3), s.get("momentumBeta", 0.6), s.get("maskMode", "channel")
    momentum = None
    x = xts[skip].clone()
    for k in range(skip, n):
        i, t = k - skip, ts[k]
        eps = m.unet(x.repeat(batch, 1, 1, 1), t, states)
        eps_uncond = eps[:1]
        guidance = g * (eps[1:2] - eps_uncond) if target else torch.zeros_like(eps_uncond)
        if concepts:
            # SEGA (arXiv:2301.12247) with diffusers' SemanticStableDiffusionPipeline recursion
            if momentum is None:
                momentum = torch.zeros_like(eps_uncond)
            eps_concepts = eps[batch - count:]
            terms, weights, warm = [], [], []
            for c, concept in enumerate(concepts):
                if i >= concept.get("warmup", 2):
                    warm.append(c)
                if concept.get("cooldown") is not None and i >= concept["cooldown"]:
                    terms.append(torch.zeros_like(eps_uncond))
                    weights.append(0.0)
                    continue
                scale = concept.get("scale", 7.0) * (-1 if concept.get("remove") else 1)
                terms.append(sega_mask((eps_concepts[c:c + 1] - eps_uncond) * scale, concept.get("threshold", 0.95), mode))
                weights.append(max(concept.get("weight", 1.0), 0.0))
            if 0 < len(warm) < count:
                total = sum(weights[c] for c in warm)
                if total > 0:
                    for c in warm:
                        guidance = guidance + weights[c] / total * terms[c]
            edit_term = sum(w * term for w, term in zip(weights, terms)) + s_m * momentum
            momentum = beta * momentum + (1 - beta) * edit_term
            if len(warm) == count:
                guidance = guidance + edit_term
        mean, sigma = m.ddim(x, eps_uncond + guidance, t, n, eta)
        x = mean + sigma * zs[k]
    return m.decode(x), x


def imagic(m, s, mark):
    """Imagic stages A and B (arXiv:2210.09276), as diffusers' community imagic pipeline trains,
    except that stage B fine-tunes a deep copy of the UNet (torchedit keeps the loaded model
    unchanged, so the user who wants the same result must copy)."""
    size = (s.get("latentSize") or m.config["sampleSize"]) * m.config.get("vaeScaleFactor", 8)
    with torch.no_grad():
        x0 = m.encode_image(bench_image(size))
        target = m.encode([s["targetPrompt"]])
    generator = torch.Generator().manual_seed(s["seed"])

    def draw():
        t = int(torch.randint(m.T, (1,), generator=generator).item())
        return t, torch.randn(x0.shape, generator=generator)

    def loss_at(unet, embedding):
        t, noise = draw()
        a = m.alpha_bar(t)
        xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
        return F.mse_loss(m.unet(xt, t, embedding, unet), noise)

    # A. optimise the text embedding, UNet frozen
    for p in m.unet_module.parameters():  # (ScriptModule has no requires_grad_())
        p.requires_grad_(False)
    embedding = target.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([embedding], lr=s["embedding"]["lr"])
    losses_a = []
    for _ in range(s["embedding"]["steps"]):
        optimizer.zero_grad()
        loss = loss_at(m.unet_module, embedding)
        loss.backward()
        optimizer.step()
        losses_a.append(loss.item())
    optimized = embedding.detach().clone()
    del optimizer
    mark("embedding")
    # B. fine-tune (a copy of) the UNet on the optimised embedding
    unet = copy.deepcopy(m.unet_module)
    for p in unet.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(unet.parameters(), lr=s["finetune"]["lr"])
    losses_b = []
    for _ in range(s["finetune"]["steps"]):
        optimizer.zero_grad()
        loss = loss_at(unet, optimized)
        loss.backward()
        optimizer.step()
        losses_b.append(loss.item())
    del optimizer
    for p in unet.parameters():
        p.requires_grad_(False)
        p.grad = None
    mark("finetune")
    return unet, optimized, losses_a, losses_b


# ----------------------------------------------------------------------------- measuring

def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"minor": r.ru_minflt, "major": r.ru_majflt, "maxrss": r.ru_maxrss}


def run_job(m, spec, inversion):
    """Runs one job; returns its measurements (and Imagic's per-phase ones)."""
    calls0, samples0 = m.unet_calls, m.unet_samples
    phases = {}
    last = {"time": time.perf_counter(), "usage": usage(), "calls": m.unet_calls}
    start = dict(last)
    start_epoch_ms = time.time() * 1000

    def mark(name):
        now, u = time.perf_counter(), usage()
        phases[name] = {"wallSeconds": now - last["time"], "minorFaults": u["minor"] - last["usage"]["minor"],
                        "majorFaults": u["major"] - last["usage"]["major"], "maxRssKB": u["maxrss"],
                        "unetCalls": m.unet_calls - last["calls"]}
        last.update(time=now, usage=u, calls=m.unet_calls)

    kind = spec["kind"]
    if kind == "txt2img":
        result = txt2img(m, spec)
    elif kind == "invert":
        result = invert(m, spec)
    elif kind == "edit":
        result = edit(m, spec, inversion)
    elif kind == "imagic":
        result = imagic(m, spec, mark)
    else:
        raise SystemExit("unknown workload kind %r" % kind)
    end, u = time.perf_counter(), usage()
    end_epoch_ms = time.time() * 1000
    # What the job computed, summarised so the harness can check both sides agree (not timed):
    # mean |final latents| (txt2img, edit), mean |z| (invert), the sum of the losses (imagic).
    if kind in ("txt2img", "edit"):
        checksum = result[1].abs().mean().item()
    elif kind == "invert":
        checksum = result["zs"].abs().mean().item()
    else:
        checksum = sum(result[2]) + sum(result[3])
    del result
    out = {"wallSeconds": end - start["time"], "unetCalls": m.unet_calls - calls0, "unetSamples": m.unet_samples - samples0,
           "minorFaults": u["minor"] - start["usage"]["minor"], "majorFaults": u["major"] - start["usage"]["major"],
           "maxRssKB": u["maxrss"], "checksum": checksum,
           # when the job ran, so the harness can read its own event-loop delay over that window
           "jobWindowMs": [start_epoch_ms, end_epoch_ms]}
    if phases:
        out["phases"] = phases
    return out


def default_warmup(spec):
    """The warm-up job (bench/workloads.ts warmupOf): the same shapes and code paths with 2 steps
    (Imagic 3 + 3) and prompts not used later; the profiling executor needs 2-3 runs of a graph."""
    w = json.loads(json.dumps(spec))
    for key in ("prompt", "sourcePrompt", "targetPrompt"):
        if w.get(key):
            w[key] = w[key] + ", warm-up"
    if w["kind"] in ("txt2img", "invert"):
        w["steps"] = min(w["steps"], 2)
    elif w["kind"] == "edit":
        w["skip"] = max(w["skip"], w.get("inversionSteps", 50) - 2)
    elif w["kind"] == "imagic":
        w["embedding"]["steps"] = w["finetune"]["steps"] = 3
    return w


def load_inversion(spec):
    tensors, _ = load_file(spec["inversionFile"])
    return tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--workload", default=None, help="a name from DEFAULTS when no --spec is given")
    p.add_argument("--spec", default=None, help="the workload's settings as JSON (see bench/workloads.ts)")
    p.add_argument("--warmup-spec", default=None, help="the warm-up job's settings as JSON")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.spec:
        spec = json.loads(args.spec)
    elif args.workload in DEFAULTS:
        spec = DEFAULTS[args.workload]
    else:
        p.error("give --spec, or --workload one of %s" % ", ".join(DEFAULTS))
    warm = json.loads(args.warmup_spec) if args.warmup_spec else default_warmup(spec)
    torch.set_num_threads(args.threads)
    m = StableDiffusion(args.bundle)
    inversion = load_inversion(spec) if spec["kind"] == "edit" else None
    t0 = time.perf_counter()
    run_job(m, warm, inversion)
    print("python: warm-up job %.2fs" % (time.perf_counter() - t0), file=sys.stderr)
    for _ in range(args.runs):
        out = run_job(m, spec, inversion)
        out.update(side="python", workload=args.workload or spec["kind"], threads=torch.get_num_threads())
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
