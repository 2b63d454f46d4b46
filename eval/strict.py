"""The strict evaluation's one definition of success, and the scene analyser it reads pictures with.

Every number of `npm run eval` that says "strict" comes from `score_edit` below; the definition is
written out once, for people, in eval/README.md ("Strict success"). Library functions (numpy only,
plus scripts/tinysd's analyze.py, scene_analyze.py and scenes.py imported as libraries, never edited):

    analyze_scene(img) -> dict     the objects a picture shows (bg word, objects left to right)
    score_edit(src, attrs, res, edit) -> dict   one edit against its source: every check and `strict`
    score_t2i(img, attrs) -> dict  one text-to-image sample against the attributes it was prompted with
    psnr(a, b, mask=None)          PSNR in dB (analyze.psnr)

img / src / res: HxWx3 arrays, uint8 in [0, 255] or float in [0, 1]. attrs: scenes.attributes() of
the source picture (or the prompt's attributes for text-to-image). edit: {"object": k, "color": c'}
(object k of attrs["objects"], left to right, is to become colour c'; every other object is to stay).

Why not scene_analyze.analyze_scene as it is: its shape test (analyze.py's coverage outside the
inscribed ellipse) names 95.2% of the shapes in VAE round trips of held-out scenes.py pictures
through shapes2-64's 4x VAE (VAE step 1849; this analyser: 98.1%), missing shapes of r < 6 px, and it names every blob one of the three shapes (an ellipse "circle",
a 2:1 rectangle "square"). Here each object's shape is the
best least-squares fit of scenes.py's own renderer (scenes._coverage: the exact anti-aliased
circle, square or triangle, free centre and size) blurred by a fitted Gaussian (a VAE softens
edges), to the object's colour-distance map; a fit that explains less than FIT_MIN of the map's
energy is "other" (no shape), which never counts as the same shape. Validation: eval/validate.py.

CLI (used by eval/run.ts; one JSON object per line on stdout):
    /usr/bin/python3 eval/strict.py edits CASES.json SRC.npy RES.npy
        CASES.json: [{"attrs": scenes attributes, "edit": {"object": k, "color": c'}}, ...]
    /usr/bin/python3 eval/strict.py t2i CASES.json IMAGES.npy
        CASES.json: [{"attrs": attributes the prompt names}, ...]
    /usr/bin/python3 eval/strict.py psnr A.npy B.npy       whole-picture PSNR of each pair
"""
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "tinysd"))
import analyze  # noqa: E402
import scene_analyze  # noqa: E402
import scenes  # noqa: E402

# ------------------------------------------------------------------ the strict definition's constants
SHIFT_MAX = 4.0         # px: a kept object's centroid moved less than this
BG_PSNR_MIN = 25.0      # dB: PSNR of the background outside the widened masks
MASK_WIDEN = 2          # px: the union of the source's and the result's masks is dilated by this
COLOR_DIST_MAX = 80.0   # RGB units: farther than this from every palette colour is no colour
FIT_MIN = 0.92          # explained energy share below which a blob is no shape ("other")
# ------------------------------------------------------------------ the analyser's constants
FG_THRESHOLD = analyze.FG_THRESHOLD  # 60 RGB units from the background colour: an object pixel
MIN_OBJECT_PX = 10      # components smaller than this are specks (the smallest object, r 4, has > 40 px)
MAX_OBJECTS = 4         # objects analysed per picture (more are counted, not analysed)
MAX_BLUR = 3.0          # px: the largest Gaussian sigma the shape fit may use

R_FROM_AREA = {
    "circle": lambda a: math.sqrt(a / math.pi),
    "square": lambda a: math.sqrt(a) / 1.8,
    "triangle": lambda a: math.sqrt(a / (3 * math.sqrt(3) / 4)) / 1.3,
}

psnr = analyze.psnr


def to255(img):
    return analyze.to_float(img) * 255.0


_BLUR_CACHE = {}


def _blur_matrix(n, sigma):
    """The n x n matrix of a 1-D Gaussian blur with zero padding (truncated at 3 sigma)."""
    key = (n, round(sigma, 6))
    g = _BLUR_CACHE.get(key)
    if g is None:
        rad = max(1, int(math.ceil(3 * sigma)))
        k = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma) ** 2)
        k /= k.sum()
        i = np.arange(n)
        d = i[None, :] - i[:, None]
        g = np.where(np.abs(d) <= rad, k[np.clip(d + rad, 0, 2 * rad)], 0.0)
        if len(_BLUR_CACHE) > 4096:
            _BLUR_CACHE.clear()
        _BLUR_CACHE[key] = g
    return g


def _blur(a, sigma):
    """Separable Gaussian blur with zero padding (the window is padded with background = 0)."""
    if sigma <= 0.05:
        return a
    return _blur_matrix(a.shape[0], sigma) @ a @ _blur_matrix(a.shape[1], sigma).T


def _template(shape, cx, cy, r, win, size):
    """scenes.py's own anti-aliased coverage of a shape, cropped to the window (y0, y1, x0, x1)."""
    y0w, y1w, x0w, x1w = win
    out = np.zeros((size, size))
    y0, x0, cov = scenes._coverage(dict(shape=shape, cx=cx, cy=cy, r=r), size=size)
    out[y0:y0 + cov.shape[0], x0:x0 + cov.shape[1]] = cov
    return out[y0w:y1w, x0w:x1w]


def fit_shape(o, win, cx0, cy0, area0, size):
    """Least-squares fit of each shape to the observed map o (window win): o ~ a * blur(template).
    Returns {shape: (explained share of o's energy, params)}; coordinate search from the centroid
    and the area's equivalent size."""
    oo = float((o * o).sum())
    out = {}
    for s in scenes.SHAPES:
        def explained(p):
            m = _blur(_template(s, p["cx"], p["cy"], p["r"], win, size), p["sig"])
            mm = float((m * m).sum())
            if mm <= 0 or oo <= 0:
                return -1.0
            om = float((o * m).sum())
            return om * om / mm / oo

        p = dict(cx=cx0, cy=cy0, r=max(2.0, R_FROM_AREA[s](area0)), sig=0.7)
        best = explained(p)
        steps = dict(r=0.08, cx=0.5, cy=0.5, sig=0.4)
        for _ in range(5):
            improved = False
            for key in ("r", "cx", "cy", "sig"):
                for sign in (1, -1):
                    while True:
                        q = dict(p)
                        q[key] = p[key] + sign * steps[key] * (p["r"] if key == "r" else 1.0)
                        if (key == "sig" and not 0 <= q[key] <= MAX_BLUR) or (key == "r" and q[key] < 1.5):
                            break
                        v = explained(q)
                        if v > best + 1e-7:
                            p, best, improved = q, v, True
                        else:
                            break
            if not improved:
                for k in steps:
                    steps[k] /= 2
        out[s] = (best, p)
    return out


def _object(x, bg_rgb, comp, others, size):
    """One object: the component `comp` alone (the other objects painted over with the background)."""
    alone = x.copy()
    alone[analyze._dilate(others, 2) & ~analyze._dilate(comp, 1)] = bg_rgb
    dist = np.linalg.norm(alone - bg_rgb, axis=2)
    # centroid, area and the object's region as analyze.py measures them (coverage-weighted)
    a = analyze.analyze(alone / 255.0)
    region = analyze._dilate(comp, 4)
    ys, xs = np.nonzero(region)
    win = (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)
    o = (dist * region)[win[0]:win[1], win[2]:win[3]]
    s = size / 64.0
    if a["found"]:
        cx, cy, area = a["cx"], a["cy"], a["area"]
    else:
        yy, xx = np.nonzero(comp)
        cx, cy, area = float(xx.mean() + 0.5), float(yy.mean() + 0.5), float(comp.sum())
    fits = fit_shape(o, win, cx, cy, area, size)
    best = max(fits, key=lambda k: fits[k][0])
    share, p = fits[best]
    # colour: least-squares unmixing of the fitted (blurred) coverage m from the background:
    # x - bg ~ m * (c - bg) over the window, so a soft small object is not pulled towards the background
    m = _blur(_template(best, p["cx"], p["cy"], p["r"], win, size), p["sig"])
    d = (alone - bg_rgb)[win[0]:win[1], win[2]:win[3]] * region[win[0]:win[1], win[2]:win[3], None]
    mm = float((m * m).sum())
    rgb = bg_rgb + (d * m[..., None]).sum(axis=(0, 1)) / max(mm, 1e-9)
    rgb = np.clip(rgb, 0, 255)
    color, cd = analyze._nearest(rgb, analyze.COLORS)
    shape = best if share >= FIT_MIN else "other"
    mask = analyze._dilate(comp, 1)  # the object's pixels and their anti-aliased rim
    return dict(shape=shape, fit_shape=best, fit=round(share, 4), fits={k: round(v[0], 4) for k, v in fits.items()},
                r_est=round(p["r"] / s, 2), blur=round(p["sig"], 2), size=scenes.size_word(p["r"] / s),
                color=color if cd <= COLOR_DIST_MAX else "none", nearest_color=color, color_dist=round(cd, 1),
                rgb=[round(float(v), 1) for v in rgb], cx=round(cx, 2), cy=round(cy, 2), area=round(area, 1),
                pos=scenes.pos_word(cx / s), pixels=int(comp.sum()), mask=mask)


def analyze_scene(img):
    """-> dict(bg, bg_rgb, n (objects counted), objects=[...] left to right (at most MAX_OBJECTS)).
    An object is a 4-connected component of pixels > FG_THRESHOLD from the border's median colour
    with at least MIN_OBJECT_PX pixels."""
    x = to255(img)
    H, W, _ = x.shape
    border = np.concatenate([x[:2].reshape(-1, 3), x[-2:].reshape(-1, 3), x[:, :2].reshape(-1, 3),
                             x[:, -2:].reshape(-1, 3)])
    bg_rgb = np.median(border, axis=0)
    dist = np.linalg.norm(x - bg_rgb, axis=2)
    lab, sizes = analyze.components(dist > FG_THRESHOLD)
    order = [k for k in np.argsort(sizes)[::-1] if k and sizes[k] >= MIN_OBJECT_PX]
    analysed = order[:MAX_OBJECTS]
    objs = []
    for k in analysed:
        others = np.zeros((H, W), dtype=bool)
        for j in analysed:
            if j != k:
                others |= lab == j
        objs.append(_object(x, bg_rgb, lab == k, others, W))
    objs.sort(key=lambda o: o["cx"])
    return dict(bg=scenes.bg_word(bg_rgb), bg_rgb=[round(float(v), 1) for v in bg_rgb], n=len(order), objects=objs)


def match(objects, targets):
    """Greedy nearest-centroid matching of analysed objects to target objects (each used once):
    -> list, per target, of (object or None, distance)."""
    pairs = sorted((math.hypot(t["cx"] - o["cx"], t["cy"] - o["cy"]), i, j)
                   for i, t in enumerate(targets) for j, o in enumerate(objects))
    out = [(None, math.inf)] * len(targets)
    used = set()
    for d, i, j in pairs:
        if out[i][0] is None and j not in used:
            out[i] = (objects[j], d)
            used.add(j)
    return out


def source_masks(attrs, size=64):
    """Ground-truth masks of the source's objects (anti-aliased coverage > 0), one boolean HxW each."""
    m = scenes.object_masks([attrs])[0].numpy()
    return [m[k] > 0 for k in range(len(attrs["objects"]))]


def score_edit(src, attrs, res, edit, src_scene=None):
    """The strict success of one edit. src: the source picture, attrs: its scenes.py attributes,
    res: the edited picture, edit: {"object": k, "color": c'}. Strict success =
      1. the result shows as many objects as the source (no object lost, merged or added), and
      2. every source object is matched (nearest centroid) by a result object that
         - has the wanted colour: c' for the edited object, its own colour for every other one
           (nearest palette colour, and within COLOR_DIST_MAX of it),
         - has the source object's shape (the analyser's fit; "other" is never the same),
         - has its centroid less than SHIFT_MAX px from the source object's (both analysed), and
      3. the PSNR outside the union of the source's (ground truth) and the result's (analysed)
         object masks, dilated by MASK_WIDEN px, is at least BG_PSNR_MIN dB.
    Returns every check, the reason of the first failure ("" on success) and `strict`."""
    size = np.asarray(src).shape[1]
    src_scene = src_scene or analyze_scene(src)
    r = analyze_scene(res)
    gts = attrs["objects"]
    want = [edit["color"] if k == edit["object"] else o["color"] for k, o in enumerate(gts)]
    # the source objects' analysed centroids (the same estimator as the result's)
    src_match = match(src_scene["objects"], gts)
    refs = [dict(cx=m["cx"], cy=m["cy"]) if m is not None else dict(cx=o["cx"], cy=o["cy"])
            for (m, _), o in zip(src_match, gts)]
    matched = match(r["objects"], refs)
    per = []
    for k, ((o, d), gt) in enumerate(zip(matched, gts)):
        per.append(dict(found=o is not None, color=o["color"] if o else None, want_color=want[k],
                        shape=o["shape"] if o else None, want_shape=gt["shape"], shift=round(d, 2) if o else None,
                        color_ok=bool(o and o["color"] == want[k]), shape_ok=bool(o and o["shape"] == gt["shape"]),
                        moved_ok=bool(o and d < SHIFT_MAX), fit=o["fit"] if o else None,
                        color_dist=o["color_dist"] if o else None, r_est=o["r_est"] if o else None))
    union = np.zeros((size, size), dtype=bool)
    for m in source_masks(attrs, size):
        union |= m
    for o in r["objects"]:
        union |= o["mask"]
    union = analyze._dilate(union, MASK_WIDEN)
    bg = psnr(src, res, ~union)
    count_ok = r["n"] == len(gts)
    checks = dict(count=count_ok, color=all(p["color_ok"] for p in per), shape=all(p["shape_ok"] for p in per),
                  moved=all(p["moved_ok"] for p in per), background=bool(bg >= BG_PSNR_MIN))
    reasons = []
    if not count_ok:
        reasons.append(f"{r['n']} objects")
    for k, p in enumerate(per):
        tag = f"obj{k + 1} " if len(gts) > 1 else ""
        if not p["found"]:
            reasons.append(f"{tag}lost")
            continue
        if not p["color_ok"]:
            reasons.append(f"{tag}colour {p['color']}")
        if not p["shape_ok"]:
            reasons.append(f"{tag}shape {p['shape']}")
        if not p["moved_ok"]:
            reasons.append(f"{tag}moved {p['shift']:.1f}px")
    if not checks["background"]:
        reasons.append(f"bg {bg:.1f}dB")
    edited = per[edit["object"]]
    return dict(strict=all(checks.values()), reason=", ".join(reasons), checks=checks, bg_psnr=round(bg, 3),
                psnr=round(psnr(src, res), 3), n_result=r["n"], objects=per,
                edited=dict(color_ok=edited["color_ok"], shape_ok=edited["shape_ok"], moved_ok=edited["moved_ok"],
                            shift=edited["shift"]),
                bg_word=r["bg"], src_bg_word=attrs["bg"])


def score_t2i(img, attrs):
    """A text-to-image sample against the attributes its prompt names (every object's colour,
    shape and position word, and the background word). Objects are paired left to right when the
    count is right, else by nearest centroid."""
    r = analyze_scene(img)
    gts = attrs["objects"]
    if r["n"] == len(gts) and len(r["objects"]) == len(gts):
        pairs = list(zip(r["objects"], gts))
    else:
        pairs = [(m, gt) for (m, _), gt in zip(match(r["objects"], gts), gts)]
    per = [dict(found=o is not None, color=o and o["color"], shape=o and o["shape"], pos=o and o["pos"],
                color_ok=bool(o and o["color"] == gt["color"]), shape_ok=bool(o and o["shape"] == gt["shape"]),
                pos_ok=bool(o and o["pos"] == gt["pos"])) for o, gt in pairs]
    ok = [p["color_ok"] and p["shape_ok"] and p["pos_ok"] for p in per]
    bg_ok = r["bg"] == attrs["bg"]
    reasons = []
    if r["n"] != len(gts):
        reasons.append(f"{r['n']} objects")
    for k, (p, gt) in enumerate(zip(per, gts)):
        tag = f"obj{k + 1} " if len(gts) > 1 else ""
        if not p["found"]:
            reasons.append(f"{tag}missing")
            continue
        for f in ("color", "shape", "pos"):
            if not p[f + "_ok"]:
                reasons.append(f"{tag}{f} {p[f]}")
    if not bg_ok:
        reasons.append(f"bg {r['bg']}")
    return dict(count_ok=r["n"] == len(gts), n_result=r["n"], objects=per, all_objects_ok=all(ok) and r["n"] == len(gts),
                color_ok=per[0]["color_ok"], shape_ok=per[0]["shape_ok"], pos_ok=per[0]["pos_ok"], bg_ok=bg_ok,
                bg=r["bg"], reason=", ".join(reasons))


def _json_default(v):
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    raise TypeError(type(v))


def _load(path):
    imgs, _ = analyze.load_batch(path)
    return imgs


def main(argv):
    if not argv or argv[0] not in ("edits", "t2i", "psnr"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[0]
    if cmd == "psnr":
        a, b = _load(argv[1]), _load(argv[2])
        for k, (x, y) in enumerate(zip(a, b)):
            print(json.dumps({"i": k, "psnr": round(psnr(x, y), 3)}))
        return 0
    with open(argv[1]) as f:
        cases = json.load(f)
    if cmd == "edits":
        src, res = _load(argv[2]), _load(argv[3])
        if not len(src) == len(res) == len(cases):
            print(f"strict.py: {len(cases)} cases, {len(src)} sources, {len(res)} results", file=sys.stderr)
            return 2
        cache = {}
        for k, (c, s, x) in enumerate(zip(cases, src, res)):
            key = c["attrs"]["index"]
            if key not in cache:  # the same source is scored against several results
                cache[key] = analyze_scene(s)
            out = score_edit(s, c["attrs"], x, c["edit"], src_scene=cache[key])
            print(json.dumps({"i": k, **out}, default=_json_default), flush=True)
    else:
        imgs = _load(argv[2])
        for k, (c, x) in enumerate(zip(cases, imgs)):
            print(json.dumps({"i": k, **score_t2i(x, c["attrs"])}, default=_json_default), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
