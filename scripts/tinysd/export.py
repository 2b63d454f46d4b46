"""Export a train.py checkpoint to a torchedit bundle, draw a sample grid, and measure it.

    /usr/bin/python3 scripts/tinysd/export.py --ckpt /work/train-run/ckpt.pt --out models/shapes-64 \
        [--no-ema] [--n-eval 96] [--cfg 7.5] [--edit-check 64] [--skip-bundle]

The checkpoint's config (train.py CONFIGS) decides the data generator (data.py or scenes.py),
the latent size and vaeScaleFactor written to model.json. For shapes2-64 the text-to-image
measure uses held-out one-object pictures, and a second measure two-object prompts ("a red
circle on the left and a blue square on the right"), scored per object by scene_analyze.py.

Works from any checkpoint that has reached the unet phase (uses the EMA weights if present).
Writes <out>/{model.json, text_encoder.pt, unet.pt, vae_encoder.pt, vae_decoder.pt, tokenizer/}
through scripts/bundle_writer.py, then reloads the written TorchScript files and measures
(everything on held-out data.py indices >= TEST_START, never seen in training):
  - VAE round-trip PSNR (posterior mean -> decoder) on --n-eval images;
  - text-to-image accuracy: prompts "a <colour> <shape> <on the left|in the middle|on the right>"
    from held-out attributes, DDIM 50 steps (eta 0, leading spacing, stepsOffset 1) with
    classifier-free guidance --cfg, scored with analyze.py (colour, shape, position bin);
  - with --edit-check N: a Python preview of the edit metrics (edit-friendly DDPM inversion,
    100 steps, skip 30, then the target prompt with the colour word replaced; no SEGA), scored
    as the issue defines strict success. The authoritative LEDITS/Imagic numbers come from the
    Node-side evaluation.
Writes <out>/samples.png (rows = prompts, columns = seeds) and <out>/metrics.json.
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import analyze  # noqa: E402
import data  # noqa: E402
import scene_analyze  # noqa: E402
from clip_bpe import ClipBPE  # noqa: E402
from train import TOKENIZER_DIR, build_models, data_module, sd_alphas_cumprod  # noqa: E402
from models import WithCrossAttentionMaps, nparams  # noqa: E402

GRID_PROMPTS = [
    "a red circle on the left",
    "a blue square on the right",
    "a green triangle in the middle",
    "a yellow circle on a black background",
    "a large blue triangle on the left on a white background",
    "a small red square on the right on a gray background",
    "blue",
    "a triangle",
    "green on the right",
    "",
]
GRID_PROMPTS_2 = [
    "a red circle on the left and a blue square on the right",
    "a green triangle in the middle",
    "a yellow square on the left and a green circle in the middle on a black background",
    "a small yellow circle on the right on a light gray background",
    "a large blue square on a sky blue background",
    "a tiny red triangle on the left on a beige background",
    "a big green circle on a lavender background",
    "a blue triangle on a gray background",
    "two shapes on a light pink background",
    "blue",
    "",
]
DESCRIPTIONS = {
    "shapes-64": "Tiny text-to-image latent diffusion model trained on CPU on synthetic 64x64 pictures of one "
                 "shape (circle/square/triangle; red/green/blue/yellow; left/middle/right; small/large) on a "
                 "white/black/gray background. See MODEL_CARD.md.",
    "shapes2-64": "Tiny text-to-image latent diffusion model trained on CPU on synthetic 64x64 pictures of one or two "
                  "shapes (circle/square/triangle; red/green/blue/yellow; left/middle/right; radius 4-22 px) on "
                  "grey (black to white) or tinted (sky blue, beige, light pink, pale green, lavender) backgrounds; "
                  "4x VAE, 16x16 latents. See MODEL_CARD.md.",
}
POS_PHRASE = {"left": "on the left", "center": "in the middle", "right": "on the right"}


def load_checkpoint(path, use_ema=True):
    st = torch.load(path)
    if st["phase"] not in ("unet", "done"):
        raise SystemExit(f"{path}: checkpoint is in phase {st['phase']}; export needs the unet phase")
    enc, dec, te, un = build_models(st["config"], st["known_ids"])
    enc.load_state_dict(st["vae_encoder"])
    dec.load_state_dict(st["vae_decoder"])
    te.load_state_dict(st["text_encoder"])
    un.load_state_dict(st["unet"])
    if use_ema and "ema" in st:
        ema = st["ema"]
        un.load_state_dict({k: v for k, v in ema.items() if not k.startswith("te.")})
        te.load_state_dict({k[3:]: v for k, v in ema.items() if k.startswith("te.")})
    for m in (enc, dec, te, un):
        m.eval()
    return st, enc, dec, te, un


class Sampler:
    def __init__(self, te, un, dec, enc, sf, tok, max_len, latent_shape=(4, 8, 8)):
        self.te, self.un, self.dec, self.enc, self.sf, self.tok, self.L = te, un, dec, enc, sf, tok, max_len
        self.latent_shape = tuple(latent_shape)
        self.acp = sd_alphas_cumprod().double()

    @torch.no_grad()
    def embed(self, prompts):
        return self.te(torch.tensor([self.tok(p, self.L) for p in prompts]))

    @torch.no_grad()
    def eps(self, x, t, cond, uncond, w):
        B = x.shape[0]
        e = self.un(torch.cat([x, x]).float(), torch.full((2 * B,), int(t), dtype=torch.int64), torch.cat([uncond, cond]))
        eu, ec = e.double().chunk(2)
        return eu + w * (ec - eu)

    @torch.no_grad()
    def ddim(self, prompts, seeds, w=7.5, steps=50):
        """Plain DDIM (eta 0), leading spacing, stepsOffset 1; returns images [B,3,64,64] in [0,1]."""
        cond = self.embed(prompts)
        uncond = self.embed([""] * len(prompts))
        x = torch.stack([torch.randn(*self.latent_shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).double()
        ratio = 1000 // steps
        ts = list(range(0, steps * ratio, ratio))[::-1]
        ts = [t + 1 for t in ts]
        for t in ts:
            e = self.eps(x, t, cond, uncond, w)
            a = self.acp[t]
            ap = self.acp[t - ratio] if t - ratio >= 0 else self.acp[0]
            x0 = (x - (1 - a).sqrt() * e) / a.sqrt()
            x = ap.sqrt() * x0 + (1 - ap).sqrt() * e
        return self.decode(x)

    @torch.no_grad()
    def decode(self, z):
        return ((self.dec((z / self.sf).float()) + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode(self, img01):
        return self.enc(img01 * 2 - 1)[:, :self.latent_shape[0]].double() * self.sf

    @torch.no_grad()
    def edit_friendly(self, img01, src, tgt, w_src=3.5, w_tgt=7.5, steps=100, skip=30, seed=0):
        """Edit-friendly DDPM inversion (Huberman-Spiegelglas et al., arXiv:2304.06140) then
        regeneration with the target prompt, eta = 1 DDPM steps, leading spacing, offset 1."""
        g = torch.Generator().manual_seed(seed)
        x0 = self.encode(img01)
        B = x0.shape[0]
        ratio = 1000 // steps
        ts = [t + 1 for t in list(range(0, steps * ratio, ratio))[::-1]]
        acp = self.acp

        def prev_a(t):
            return acp[t - ratio] if t - ratio >= 0 else acp[0]

        def var(t):
            a, ap = acp[t], prev_a(t)
            return (1 - ap) / (1 - a) * (1 - a / ap)

        def mu(x, t, e):
            a, ap = acp[t], prev_a(t)
            x0p = (x - (1 - a).sqrt() * e) / a.sqrt()
            return ap.sqrt() * x0p + (1 - ap - var(t)).sqrt() * e

        # x_t for every t, independently noised (eq. 6 of 2304.06140)
        xs = {t: acp[t].sqrt() * x0 + (1 - acp[t]).sqrt() * torch.randn(x0.shape, generator=g, dtype=torch.float64) for t in ts}
        cs, ct, un = self.embed(src), self.embed(tgt), self.embed([""] * B)
        zs = {}
        for i, t in enumerate(ts):
            xprev = xs[ts[i + 1]] if i + 1 < len(ts) else x0
            e = self.eps(xs[t], t, cs, un, w_src)
            zs[t] = (xprev - mu(xs[t], t, e)) / var(t).sqrt()
        x = xs[ts[skip]]
        for t in ts[skip:]:
            e = self.eps(x, t, ct, un, w_tgt)
            x = mu(x, t, e) + var(t).sqrt() * zs[t]
        return self.decode(x)


def to_hwc(x):
    return x.permute(0, 2, 3, 1).numpy()


def save_grid(rows, path, labels):
    from PIL import Image, ImageDraw
    n_r, n_c = len(rows), rows[0].shape[0]
    S, pad = 64 * 2, 4
    lw = max(330, 6 * max(len(t) for t in labels) + 12)
    canvas = Image.new("RGB", (lw + n_c * (S + pad), n_r * (S + pad)), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    for r, imgs in enumerate(rows):
        d.text((6, r * (S + pad) + S // 2 - 6), labels[r] if labels[r] else '"" (unconditional)', fill=(0, 0, 0))
        for c in range(n_c):
            im = Image.fromarray((to_hwc(imgs[c:c + 1])[0] * 255).round().astype(np.uint8)).resize((S, S), Image.NEAREST)
            canvas.paste(im, (lw + c * (S + pad), r * (S + pad)))
    canvas.save(path)


def one_object_attrs(dm, start, n):
    """n held-out attribute dicts with one object (all of data.py's; scenes.py's one-object ones)."""
    out, i = [], start
    while len(out) < n:
        a = dm.attributes(i)
        if a.get("n", 1) == 1:
            out.append(a)
        i += 1
    return out


def measure_t2i(args, S, dec, enc, metrics, out, dm=data, z=4, grid_prompts=GRID_PROMPTS):
    N = args.n_eval
    # ---------------------------------------------------------------- VAE round trip
    x, A = dm.generate(range(dm.TEST_START, dm.TEST_START + N))
    with torch.no_grad():
        rec = ((dec(enc(x * 2 - 1)[:, :z]) + 1) / 2).clamp(0, 1)
    ps = [analyze.psnr(a, b) for a, b in zip(to_hwc(x), to_hwc(rec))]
    metrics["vae_psnr"] = {"n": N, "mean": round(float(np.mean(ps)), 2), "median": round(float(np.median(ps)), 2),
                           "min": round(float(np.min(ps)), 2)}
    print("VAE round-trip PSNR", metrics["vae_psnr"], flush=True)
    # ---------------------------------------------------------------- text to image
    A2 = one_object_attrs(dm, dm.TEST_START + 10_000, N)
    prompts = [f"a {a['color']} {a['shape']} {POS_PHRASE[a['pos']]}" for a in A2]
    metrics["t2i"] = {}
    for w in args.cfg:
        t0 = time.time()
        imgs = torch.cat([S.ddim(prompts[k:k + 32], range(k, min(N, k + 32)), w=w) for k in range(0, N, 32)])
        ok = {"color": 0, "shape": 0, "pos": 0, "all": 0, "found": 0}
        for im, a in zip(to_hwc(imgs), A2):
            r = analyze.analyze(im)
            ok["found"] += r["found"]
            good = [r[k] == a[k] for k in ("color", "shape", "pos")]
            for k, g in zip(("color", "shape", "pos"), good):
                ok[k] += g
            ok["all"] += all(good)
        metrics["t2i"][str(w)] = {k: round(v / N, 4) for k, v in ok.items()}
        metrics["t2i"][str(w)]["n"] = N
        print(f"text-to-image cfg {w}: {metrics['t2i'][str(w)]} ({time.time() - t0:.0f}s)", flush=True)
    # ---------------------------------------------------------------- two objects (scenes.py only)
    if hasattr(dm, "full_caption"):
        A3, i = [], dm.TEST_START + 30_000
        while len(A3) < N:
            a = dm.attributes(i)
            if a["n"] == 2:
                A3.append(a)
            i += 1
        prompts2 = [dm.full_caption(a, with_bg=False) for a in A3]
        metrics["t2i_two"] = {}
        for w in args.cfg:
            t0 = time.time()
            imgs = torch.cat([S.ddim(prompts2[k:k + 32], range(k, min(N, k + 32)), w=w) for k in range(0, N, 32)])
            sc = scene_analyze.score_against(to_hwc(imgs), A3)
            metrics["t2i_two"][str(w)] = sc
            print(f"text-to-image, two objects, cfg {w}: {sc} ({time.time() - t0:.0f}s)", flush=True)
    # ---------------------------------------------------------------- sample grid
    w0 = args.cfg[0]
    rows = [S.ddim([p] * args.grid_cols, range(1000, 1000 + args.grid_cols), w=w0) for p in grid_prompts]
    save_grid(rows, os.path.join(out, "samples.png"), grid_prompts)
    metrics["grid"] = {"prompts": grid_prompts, "seeds": [1000, 1000 + args.grid_cols - 1], "cfg": w0, "sampler": "DDIM 50, eta 0"}


class NoiseOnly(torch.nn.Module):
    """A format-2 bundle UNet seen as noise-only, for the measurements below."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default="/work/train-run/ckpt.pt")
    ap.add_argument("--out", required=True, help="bundle directory (with --skip-bundle: where samples.png and "
                                                 "metrics.json go); e.g. models/shapes-64")
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--decoder", help="decoder_ft.pt from train.py --decoder-only (replaces the VAE decoder)")
    ap.add_argument("--n-eval", type=int, default=96)
    ap.add_argument("--cfg", type=float, nargs="+", default=[7.5])
    ap.add_argument("--edit-check", type=int, default=0)
    ap.add_argument("--edit-cfg", type=float, default=7.5)
    ap.add_argument("--skip-bundle", action="store_true", help="measure the checkpoint without writing a bundle")
    ap.add_argument("--grid-cols", type=int, default=8)
    ap.add_argument("--recommended", help="JSON file merged into model.json as `recommended` (the settings this model "
                                          "edits best with; torchedit uses them as its defaults for it): eval/recommended.json")
    ap.add_argument("--edit-only", action="store_true",
                    help="only the --edit-check preview (with --skip-bundle; writes <out>/metrics_edit.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.time()
    st, enc, dec, te, un = load_checkpoint(args.ckpt, not args.no_ema)
    if args.decoder:
        dft = torch.load(args.decoder)
        dec.load_state_dict(dft["vae_decoder"])
        st["decoder_ft"] = {"steps": dft["step"], "minutes": round(dft["time"] / 60, 1)}
    cfg = st["config"]
    name = cfg.get("name", "shapes-64")
    dm = data_module(cfg)
    sf = float(st["scaling_factor"])
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    L = cfg["max_len"]
    config = {
        "name": name,
        "sampleSize": cfg["latent_size"], "latentChannels": cfg["z"], "vaeScaleFactor": cfg.get("vae_scale", 8),
        "scalingFactor": sf, "predictionType": "epsilon",
        "scheduler": {"numTrainTimesteps": 1000, "betaSchedule": "scaled_linear", "betaStart": 0.00085,
                      "betaEnd": 0.012, "stepsOffset": 1, "setAlphaToOne": False, "timestepSpacing": "leading"},
        "textEncoder": {"maxLength": L, "hiddenSize": cfg["ctx_dim"], "bosTokenId": 49406, "eosTokenId": 49407,
                        "padTokenId": 49407},
        "description": DESCRIPTIONS[name],
        "imageSize": cfg.get("image_size", 64),
    }
    if args.recommended:
        with open(args.recommended) as f:
            config["recommended"] = json.load(f)
    if not args.skip_bundle:
        import shutil
        import tempfile
        import bundle_writer
        # exporting over models/shapes-64 would copy its tokenizer files onto themselves
        tok_src = tempfile.mkdtemp(prefix="tinysd-tok-")
        for fn in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(TOKENIZER_DIR, fn), os.path.join(tok_src, fn))
        from known_token_ids import known_token_ids
        config["textEncoder"]["knownTokenIds"] = known_token_ids(te)
        # Format 2: the UNet also returns its cross-attention maps at the latent size (LEDITS++'s
        # implicit masks; docs/bundle-format.md "Cross-attention maps").
        layers = un.map_layers() if hasattr(un, "map_layers") else list(un.MAP_LAYERS)
        config["crossAttentionMaps"] = {"downsample": 1, "layers": layers}
        bundle_writer.write_bundle(out, te, WithCrossAttentionMaps(un), enc, dec, config, tok_src, "float32",
                                   script=("text_encoder", "unet"))
        shutil.rmtree(tok_src)
        # measure what is shipped: the reloaded TorchScript modules (the UNet's noise output)
        te = torch.jit.load(os.path.join(out, "text_encoder.pt")).eval()
        un = NoiseOnly(torch.jit.load(os.path.join(out, "unet.pt")).eval())
        enc = torch.jit.load(os.path.join(out, "vae_encoder.pt")).eval()
        dec = torch.jit.load(os.path.join(out, "vae_decoder.pt")).eval()
    tok = ClipBPE(TOKENIZER_DIR)
    S = Sampler(te, un, dec, enc, sf, tok, L, (cfg["z"], cfg["latent_size"], cfg["latent_size"]))
    metrics = {"checkpoint": {"phase": st["phase"], "vae_step": st["vae_step"], "unet_step": st["unet_step"],
                              "vae_minutes": round(st["vae_time"] / 60, 1), "unet_minutes": round(st["unet_time"] / 60, 1),
                              "ema": (not args.no_ema) and "ema" in st, "decoder_ft": st.get("decoder_ft")},
               "scalingFactor": sf}
    N = args.n_eval
    if not args.edit_only and N > 0:  # --n-eval 0: bundle only (the measuring is eval/run.ts's job)
        measure_t2i(args, S, dec, enc, metrics, out, dm, cfg["z"],
                    GRID_PROMPTS_2 if hasattr(dm, "full_caption") else GRID_PROMPTS)
    # ---------------------------------------------------------------- edit preview
    if args.edit_check:
        n = args.edit_check
        A3 = one_object_attrs(dm, dm.TEST_START + 20_000, n)
        x3 = dm.render(A3)
        colors = list(dm.COLORS)
        new = [colors[(colors.index(a["color"]) + 1 + (a["index"] % 3)) % 4] for a in A3]
        src = [f"a {a['color']} {a['shape']} {POS_PHRASE[a['pos']]} on a {a['bg']} background" for a in A3]
        tgt = [f"a {c} {a['shape']} {POS_PHRASE[a['pos']]} on a {a['bg']} background" for a, c in zip(A3, new)]
        t0 = time.time()
        res = {}
        for name, targets in (("reconstruction", src), ("colour_edit", tgt)):
            outs = torch.cat([S.edit_friendly(x3[k:k + 16], src[k:k + 16], targets[k:k + 16],
                                              w_tgt=args.edit_cfg if name == "colour_edit" else 3.5, seed=k)
                              for k in range(0, n, 16)])
            strict, shifts, bgp, pp, col = 0, [], [], [], 0
            for im, ref, a, c, tg in zip(to_hwc(outs), to_hwc(x3), A3, new, targets):
                r = analyze.analyze(im)
                rr = analyze.analyze(ref)
                cmp = analyze.compare(im, ref, r, rr)
                want = c if name == "colour_edit" else a["color"]
                col += r["color"] == want
                shifts.append(cmp["centroid_shift"] if not math.isnan(cmp["centroid_shift"]) else 99.0)
                bgp.append(cmp["bg_psnr"])
                pp.append(cmp["psnr"])
                strict += (r["color"] == want and r["shape"] == a["shape"] and bg_name(r, dm) == a["bg"]
                           and shifts[-1] < 4)
            res[name] = {"n": n, "strict_success": round(strict / n, 4), "colour_ok": round(col / n, 4),
                         "median_centroid_shift": round(float(np.median(shifts)), 3),
                         "mean_bg_psnr": round(float(np.mean(bgp)), 2), "mean_psnr": round(float(np.mean(pp)), 2)}
            print(f"edit preview {name}: {res[name]}", flush=True)
            if name == "colour_edit":
                save_grid([x3[:8], outs[:8]], os.path.join(out, "edit_preview.png"), ["input", "edited (colour)"])
        res["settings"] = {"inversion": "edit-friendly DDPM, 100 steps", "skip": 30, "cfg_src": 3.5, "cfg_tgt": args.edit_cfg,
                           "note": "Python preview without SEGA; seconds: %.0f" % (time.time() - t0)}
        metrics["edit_preview"] = res
    metrics["params"] = {"vae_encoder": nparams_any(enc), "vae_decoder": nparams_any(dec), "text_encoder": nparams_any(te),
                         "unet": nparams_any(un)}
    if not args.skip_bundle:
        metrics["bundle_bytes"] = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs
                                      if f.endswith(".pt") or f == "model.json")
    metrics["export_seconds"] = round(time.time() - t_start)
    with open(os.path.join(out, "metrics_edit.json" if args.edit_only else "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics, indent=2))


def bg_name(r, dm):
    """The background word of an analysed picture in the data generator's vocabulary."""
    return dm.bg_word(r["bg_rgb"]) if hasattr(dm, "bg_word") else r["bg"]


def nparams_any(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    main()
