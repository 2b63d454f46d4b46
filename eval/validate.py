"""Validation of the strict evaluation's scene analyser (eval/strict.py) on VAE round trips of held-out
pictures: how often it names the shape (and colour, position, object count, background) that the
picture's generator drew. Every strict number is only as good as this.

    /usr/bin/python3 eval/validate.py --model DIR [--n 300] [--extra 40] [--out DIR] [--ckpt CKPT]

Pictures (all held out: scenes.py indices TEST_START + 30_000_000 + ..., disjoint from the cases):
  scenes   --n scenes.py pictures as they come (one or two objects, r 4-22, every background);
  concave  --extra one-object pictures of squares whose four sides bow in by 1-2 px (r 6-22),
           rendered here (a generated square often looks like this; it is still a square);
  tiny     --extra one-object pictures with r 4-5 (each shape in turn);
  huge     --extra one-object pictures with r 20-22 (each shape in turn);
  nonshape --extra/2 ellipses and --extra/2 rectangles of aspect 1.3-1.6: not one of the three
           shapes; reported apart (how often the analyser says "other"), not in the agreement.
Each picture goes through the model's own VAE (vae_encoder.pt / vae_decoder.pt with torch.jit.load:
the posterior mean, as torchedit's encodeImage, then the decoder), rounded to 8 bits as torchedit's
images are. The agreement is over every object of scenes + concave + tiny + huge; the target is
>= 98%. The same is measured on the originals (no VAE) and, for comparison, with
scripts/tinysd/scene_analyze.py (the old analyser).

--ckpt: a train.py checkpoint's VAE instead of the bundle's (to validate on a model still training).

Writes OUT/validation.json (every count), OUT/validation-originals.npy and
OUT/validation-roundtrips.npy (the pictures, for the contact sheet). Prints a summary.
"""
import argparse
import collections
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "tinysd"))
import numpy as np  # noqa: E402
import scene_analyze  # noqa: E402
import scenes  # noqa: E402
import strict  # noqa: E402

OFFSET = 30_000_000
TARGET = 0.98
SS = 4
SIZE_BINS = [("r 4-6", 6.0), ("r 6-8.5", 8.5), ("r 8.5-14", 14.0), ("r 14-22", 1e9)]
LABELS = scenes.SHAPES + ["other", "missed"]


def size_bin(r):
    return next(name for name, hi in SIZE_BINS if r < hi)


def _mask(kind, o):
    """Supersampled mask of one custom object centred at (cx, cy): concave squares and non-shapes."""
    n = 64 * SS
    ys = (np.arange(n) + 0.5) / SS - o["cy"]
    xs = (np.arange(n) + 0.5) / SS - o["cx"]
    dy, dx = ys[:, None], xs[None, :]
    r = o["r"]
    if kind == "concave":
        h, d = 0.9 * r, o["bow"]
        m = (np.abs(dx) <= h - d * (1 - np.clip(dy / h, -1, 1) ** 2)) & (np.abs(dy) <= h - d * (1 - np.clip(dx / h, -1, 1) ** 2))
    elif kind == "ellipse":
        m = (dx / (r * o["aspect"])) ** 2 + (dy / (r / o["aspect"])) ** 2 <= 1
    else:  # rectangle
        h = 0.9 * r
        m = (np.abs(dx) <= h * o["aspect"]) & (np.abs(dy) <= h / o["aspect"])
    return m.reshape(64, SS, 64, SS).mean(axis=(1, 3))


def _render_custom(a, kind):
    img = np.empty((64, 64, 3))
    img[:] = np.asarray(a["bg_rgb"], dtype=np.float64)
    for o in a["objects"]:
        cov = _mask(kind, o)[..., None]
        img = cov * np.asarray(o["rgb"], dtype=np.float64) + (1 - cov) * img
    return img / 255.0


def _one_object(rng, index, shape, r_range, extra=None):
    """A one-object picture on the background of held-out scene `index`, placed where it fits."""
    base = scenes.attributes(index)
    r = float(rng.uniform(*r_range))
    if shape in scenes.SHAPES:
        hw, up, down = scenes.extent(shape, r)
    else:  # ellipse or rectangle: at most r * aspect wide, r / aspect high
        hw = up = down = r * extra["aspect"]
    m = scenes.MARGIN + 1
    cx, cy = float(rng.uniform(hw + m, 64 - hw - m)), float(rng.uniform(max(up, hw) + m, 64 - max(down, hw) - m))
    color = list(scenes.COLORS)[rng.integers(4)]
    rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(scenes.COLORS[color], rng.integers(-14, 15, size=3)))
    o = dict(shape=shape, color=color, rgb=rgb, cx=cx, cy=cy, r=r, pos=scenes.pos_word(cx), size=scenes.size_word(r))
    o.update(extra or {})
    return dict(index=index, n=1, bg=base["bg"], bg_rgb=base["bg_rgb"], objects=[o])


def build(n, extra):
    """-> list of (group, attrs, float image HxWx3 in [0, 1])."""
    rng = np.random.default_rng(20261202)
    start = scenes.TEST_START + OFFSET
    out = []
    x, attrs = scenes.generate(range(start, start + n))
    for a, img in zip(attrs, x.permute(0, 2, 3, 1).numpy()):
        out.append(("scenes", a, img))
    i = start + 1_000_000
    for k in range(extra):
        a = _one_object(rng, i + k, "square", (6.0, 22.0), dict(bow=float(rng.uniform(1.0, 2.0))))
        a["objects"][0]["shape"] = "square"
        out.append(("concave", a, _render_custom(a, "concave")))
    for group, rr in (("tiny", (4.0, 5.0)), ("huge", (20.0, 22.0))):
        i += 1_000_000
        for k in range(extra):
            a = _one_object(rng, i + k, scenes.SHAPES[k % 3], rr)
            out.append((group, a, scenes.render([a])[0].permute(1, 2, 0).numpy()))
    i += 1_000_000
    for k in range(extra):
        kind = "ellipse" if k % 2 == 0 else "rectangle"
        a = _one_object(rng, i + k, kind, (7.0, 14.0), dict(aspect=float(rng.uniform(1.3, 1.6))))
        out.append(("nonshape", a, _render_custom(a, kind)))
    return out


def load_vae(model, ckpt):
    import torch
    torch.set_num_threads(1)
    if ckpt:
        from train import build_models
        st = torch.load(ckpt, map_location="cpu")
        enc, dec, _, _ = build_models(st["config"], st["known_ids"])
        enc.load_state_dict(st["vae_encoder"])
        dec.load_state_dict(st["vae_decoder"])
        channels = st["config"]["z"]
        name = f"checkpoint {ckpt} ({st['config'].get('name', 'shapes-64')}, VAE step {st.get('vae_step')})"
    else:
        with open(os.path.join(model, "model.json")) as f:
            cfg = json.load(f)
        enc = torch.jit.load(os.path.join(model, "vae_encoder.pt"), map_location="cpu")
        dec = torch.jit.load(os.path.join(model, "vae_decoder.pt"), map_location="cpu")
        channels = cfg["latentChannels"]
        name = f"{model} ({cfg.get('name')})"
    enc.eval()
    dec.eval()

    def round_trip(imgs):
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
        outs = []
        with torch.no_grad():
            for k in range(0, len(x), 64):
                z = enc(x[k:k + 64] * 2 - 1)[:, :channels]  # posterior mean (torchedit's encodeImage, x scalingFactor / scalingFactor)
                outs.append(((dec(z) + 1) / 2).clamp(0, 1))
        y = torch.cat(outs).permute(0, 2, 3, 1).numpy()
        return (y * 255).round().astype(np.uint8)  # 8 bits, as torchedit's ImageResult

    return round_trip, name


FAITHFUL_DB = 30.0  # a round trip this close to its original (PSNR) still shows what was drawn


def evaluate(items, pictures, old=False, psnrs=None):
    """Per object: truth vs analysis. -> dict of counts. With psnrs (each picture's round-trip
    PSNR), also the agreement over the pictures the VAE kept (PSNR >= FAITHFUL_DB), which
    separates the analyser's misses from the VAE's."""
    conf = collections.Counter()
    by = collections.defaultdict(lambda: [0, 0])
    fields = collections.Counter()
    n_obj = n_pic = 0
    misses = []
    nonshape = collections.Counter()
    for k, ((group, a, _), img) in enumerate(zip(items, pictures)):
        if old:
            r = scene_analyze.analyze_scene(img)
            r["objects"] = [dict(o, cx=o["cx"], cy=o["cy"]) for o in r["objects"]]
        else:
            r = strict.analyze_scene(img)
        matched = strict.match(r["objects"], a["objects"])
        if group == "nonshape":
            o, _ = matched[0]
            nonshape[o["shape"] if o else "missed"] += 1
            continue
        n_pic += 1
        fields["count"] += r["n"] == a["n"]
        fields["bg"] += r["bg"] == a["bg"]
        for gt, (o, d) in zip(a["objects"], matched):
            n_obj += 1
            got = o["shape"] if o is not None and d < 8 else "missed"
            conf[(gt["shape"], got)] += 1
            ok = got == gt["shape"]
            keys = ["all", group, size_bin(gt["r"]), gt["shape"]]
            if psnrs is not None and psnrs[k] >= FAITHFUL_DB:
                keys.append("faithful")
            for key in keys:
                by[key][0] += ok
                by[key][1] += 1
            if o is not None and d < 8:
                fields["color"] += o["color"] == gt["color"]
                fields["pos"] += o["pos"] == gt["pos"]
            if not ok:
                misses.append(dict(i=k, group=group, truth=gt["shape"], got=got, r=round(gt["r"], 1), bg=a["bg"],
                                   fit=o.get("fits") if o else None))
    return dict(
        objects=n_obj, pictures=n_pic,
        agreement=by["all"][0] / max(1, by["all"][1]),
        faithful=dict(ok=by["faithful"][0], n=by["faithful"][1], db=FAITHFUL_DB) if psnrs is not None else None,
        confusion={t: {g: conf[(t, g)] for g in LABELS} for t in scenes.SHAPES},
        by={k: dict(ok=v[0], n=v[1]) for k, v in by.items()},
        color=fields["color"] / max(1, n_obj), pos=fields["pos"] / max(1, n_obj),
        count=fields["count"] / max(1, n_pic), bg=fields["bg"] / max(1, n_pic),
        nonshape=dict(nonshape), misses=misses,
    )


def summary_lines(res):
    lines = []
    for name in ("originals", "roundtrips", "roundtrips_old"):
        v = res[name]
        lines.append(f"{name}: shape {v['agreement']:.4f} ({v['objects']} objects), colour {v['color']:.4f}, position "
                     f"{v['pos']:.4f}, count {v['count']:.4f}, bg {v['bg']:.4f}; by size "
                     + ", ".join(f"{k} {v['by'][k]['ok']}/{v['by'][k]['n']}" for k, _ in SIZE_BINS if k in v["by"])
                     + "; by set " + ", ".join(f"{g} {v['by'][g]['ok']}/{v['by'][g]['n']}"
                                              for g in ("scenes", "concave", "tiny", "huge") if g in v["by"])
                     + f"; non-shapes {v['nonshape']}"
                     + (f"; on round trips >= {v['faithful']['db']} dB: {v['faithful']['ok']}/{v['faithful']['n']}"
                        if v.get("faithful") else ""))
    return lines


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "shapes-64"))
    ap.add_argument("--ckpt")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--extra", type=int, default=40)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    t0 = time.time()
    items = build(a.n, a.extra)
    originals = [(img * 255).round().clip(0, 255).astype(np.uint8) for _, _, img in items]
    round_trip, vae_name = load_vae(a.model, a.ckpt)
    rts = round_trip([img.astype(np.float32) for _, _, img in items])
    psnrs = [strict.psnr(o, r) for o, r in zip(originals, rts)]
    res = dict(vae=vae_name, n_pictures=len(items), groups=dict(collections.Counter(g for g, _, _ in items)),
               target=TARGET, vae_psnr_mean=float(np.mean(psnrs)), vae_psnr_median=float(np.median(psnrs)))
    res["originals"] = evaluate(items, originals)
    res["roundtrips"] = evaluate(items, list(rts), psnrs=psnrs)
    res["roundtrips_old"] = evaluate(items, list(rts), old=True)
    res["pass"] = res["roundtrips"]["agreement"] >= TARGET
    res["seconds"] = round(time.time() - t0, 1)
    res["items"] = [dict(group=g, index=at["index"], bg=at["bg"],
                         objects=[dict(shape=o["shape"], r=round(o["r"], 2), color=o["color"]) for o in at["objects"]])
                    for g, at, _ in items]
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        np.save(os.path.join(a.out, "validation-originals.npy"), np.stack(originals))
        np.save(os.path.join(a.out, "validation-roundtrips.npy"), rts)
        with open(os.path.join(a.out, "validation.json"), "w") as f:
            json.dump(res, f)
    print(f"VAE: {vae_name}; {len(items)} pictures {res['groups']}; round-trip PSNR mean {res['vae_psnr_mean']:.2f} dB")
    for line in summary_lines(res):
        print(line)
    rt = res["roundtrips"]
    print("confusion (rows truth, columns analysed: " + " ".join(LABELS) + ")")
    for t in scenes.SHAPES:
        print(f"  {t:>8}: " + " ".join(f"{rt['confusion'][t][g]:>4}" for g in LABELS))
    print(f"agreement on round trips {rt['agreement']:.4f}: {'pass' if res['pass'] else 'MISS'} (target {TARGET}); {res['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
