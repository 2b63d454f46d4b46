"""Per-object analysis of scenes.py pictures (one or two shapes on a grey or tinted background),
built on analyze.py's single-shape classifier, to score shapes2-64's text-to-image samples and
edits object by object.

    analyze_scene(img) -> dict(found, n, bg, bg_rgb, objects=[obj, ...] sorted left to right)
        obj: analyze.analyze() fields of that object alone (shape, color, rgb, pos, cx, cy, area,
        mask, ...) plus r_est (equivalent "radius" in scenes.py's units) and size (scenes.py's
        small / medium / large). bg is scenes.bg_word of the border's median colour.
    match(result, attrs) -> list, per ground-truth object of attrs (scenes.attributes), of the
        analysed object nearest to its centroid (None if none within 12 px), each used once.
    score_against(imgs, attrs_list) -> dict: fraction of pictures with the right object count,
        fraction of ground-truth objects found with the right colour, shape and position word,
        fraction of pictures with every object right (and the count).
    bg_psnr(a, b, attrs) -> PSNR outside the ground-truth objects (scenes.object_masks, dilated
        2 px): how much an edit changed the background.

Check: `/usr/bin/python3 scripts/tinysd/scene_analyze.py [--n 400] [--ckpt CKPT]` prints the
accuracy on held-out originals (and with --ckpt, on their round trips through its VAE).
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import analyze  # noqa: E402
import scenes  # noqa: E402

MIN_PIXELS = 4


def _r_est(shape, area):
    if shape == "circle":
        return math.sqrt(area / math.pi)
    if shape == "square":
        return math.sqrt(area) / 1.8
    return math.sqrt(area / (3 * math.sqrt(3) / 4)) / 1.3


def analyze_scene(img, max_objects=2):
    x = analyze.to_float(img) * 255.0
    H, W, _ = x.shape
    border = np.concatenate([x[:2].reshape(-1, 3), x[-2:].reshape(-1, 3), x[:, :2].reshape(-1, 3), x[:, -2:].reshape(-1, 3)])
    bg_rgb = np.median(border, axis=0)
    dist = np.linalg.norm(x - bg_rgb, axis=2)
    lab, sizes = analyze.components(dist > analyze.FG_THRESHOLD)
    order = [k for k in np.argsort(sizes)[::-1] if k and sizes[k] >= MIN_PIXELS][:max_objects]
    objs = []
    for k in order:
        others = np.zeros((H, W), dtype=bool)
        for j in order:
            if j != k:
                others |= lab == j
        others = analyze._dilate(others, 1) & ~analyze._dilate(lab == k, 1)
        alone = x.copy()
        alone[others] = bg_rgb
        r = analyze.analyze(alone / 255.0)
        if not r["found"]:
            continue
        s = W / 64.0
        r["r_est"] = round(_r_est(r["shape"], r["area"] / (s * s)), 2)
        r["size"] = scenes.size_word(r["r_est"])
        r.pop("bg", None)
        objs.append(r)
    objs.sort(key=lambda o: o["cx"])
    return dict(found=bool(objs), n=len(objs), bg=scenes.bg_word(bg_rgb), bg_rgb=[round(float(v), 1) for v in bg_rgb],
                objects=objs)


def match(result, attrs, max_dist=12.0):
    """Greedy nearest-centroid matching of analysed objects to the ground truth's."""
    pairs = []
    for i, o in enumerate(attrs["objects"]):
        for j, p in enumerate(result["objects"]):
            pairs.append((math.hypot(o["cx"] - p["cx"], o["cy"] - p["cy"]), i, j))
    pairs.sort()
    out = [None] * len(attrs["objects"])
    used = set()
    for d, i, j in pairs:
        if d <= max_dist and out[i] is None and j not in used:
            out[i] = result["objects"][j]
            used.add(j)
    return out


def score_against(imgs, attrs_list):
    """imgs: HxWx3 arrays generated (or edited) for attrs_list; ground truth from scenes.py."""
    n_pic = len(attrs_list)
    count_ok = objs_ok = objs_total = all_ok = bg_ok = 0
    for img, a in zip(imgs, attrs_list):
        r = analyze_scene(img)
        m = match(r, a)
        good = [p is not None and p["color"] == o["color"] and p["shape"] == o["shape"] and p["pos"] == o["pos"]
                for o, p in zip(a["objects"], m)]
        count_ok += r["n"] == a["n"]
        objs_ok += sum(good)
        objs_total += len(good)
        all_ok += all(good) and r["n"] == a["n"]
        bg_ok += r["bg"] == a["bg"]
    return {"n": n_pic, "count": round(count_ok / n_pic, 4), "objects": round(objs_ok / max(1, objs_total), 4),
            "all": round(all_ok / n_pic, 4), "bg": round(bg_ok / n_pic, 4)}


def bg_psnr(a, b, attrs):
    m = scenes.object_masks([attrs])[0].numpy().max(axis=0) > 0
    return analyze.psnr(a, b, ~analyze._dilate(m, 2))


def _check(n, ckpt):
    import collections
    import torch
    x, A = scenes.generate(range(scenes.TEST_START + 400_000, scenes.TEST_START + 400_000 + n))
    sets = [("originals", x)]
    if ckpt:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from train import build_models
        st = torch.load(ckpt)
        enc, dec, _, _ = build_models(st["config"], st["known_ids"])
        enc.load_state_dict(st["vae_encoder"])
        dec.load_state_dict(st["vae_decoder"])
        with torch.no_grad():
            rec = ((dec(enc(x * 2 - 1)[:, :st["config"]["z"]]) + 1) / 2).clamp(0, 1)
        sets.append(("VAE round trips", rec))
    for name, imgs in sets:
        hwc = imgs.permute(0, 2, 3, 1).numpy()
        sc = score_against(hwc, A)
        conf = collections.Counter()
        for img, a in zip(hwc, A):
            for o, p in zip(a["objects"], match(analyze_scene(img), a)):
                if p is None:
                    conf[f"missed r<{math.ceil(o['r'])}"] += 1
                elif p["shape"] != o["shape"]:
                    conf[f"{o['shape']}->{p['shape']}"] += 1
                elif p["color"] != o["color"]:
                    conf[f"{o['color']}->{p['color']}"] += 1
                elif p["pos"] != o["pos"]:
                    conf[f"pos {o['pos']}->{p['pos']}"] += 1
        print(name, sc, dict(conf.most_common(8)), flush=True)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--ckpt")
    a = ap.parse_args()
    _check(a.n, a.ckpt)
