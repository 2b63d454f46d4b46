"""Image analysis for the shapes-64 world: what shape, colour, position and background a
picture shows, and how much two pictures differ outside the shape. Used to score text-to-image
samples and edits (LEDITS, Imagic). Pure functions on RGB arrays; numpy only (PIL for PNG files).

Functions (img: HxWx3 array, uint8 in [0,255] or float in [0,1])
    analyze(img) -> dict            one picture (fields below)
    compare(a, b) -> dict           pairwise: centroid shift, background PSNR, PSNR, same_* flags
    psnr(a, b, mask=None) -> float  PSNR in dB on [0,1] values over mask (all pixels if None)

analyze() fields
    found      bool   a shape was found (some pixels differ from the background by > 60/255)
    bg         str    nearest background class: white | black | gray
    bg_rgb     [r,g,b] median of the 2-px border ring (0..255)
    color      str    nearest shape colour: red | green | blue | yellow (None if not found)
    rgb        [r,g,b] mean colour of the solid interior of the shape
    color_dist float  distance of rgb to the nearest palette colour (0..441; > 80 = doubtful)
    shape      str    circle | square | triangle   (from the coverage of the bounding box outside its
                      inscribed ellipse, top and bottom, and the width of the rows at 25% vs 75% height)
    fill       float  shape area / bounding-box area
    pos        str    left | center | right: centroid x < 24.5, > 39.5, or between (64-px image;
                      scaled by width/64 for other sizes)
    cx, cy     float  coverage-weighted centroid in pixels (x right, y down; pixel centres at +0.5)
    area       float  coverage-weighted area in pixels
    size       str    small | large (equivalent radius < 9.5 px or not, 64-px scale)
    mask       (not in the CLI output) HxW float coverage in [0,1]

compare(a, b) fields
    centroid_shift  float  distance between the two centroids (px)
    bg_psnr         float  PSNR outside the union of both shape masks, dilated by 2 px (dB)
    psnr            float  PSNR over the whole picture (dB)
    same_shape, same_color, same_bg, same_pos  bool

CLI (stable; the Node-side evaluation calls it)
    /usr/bin/python3 scripts/tinysd/analyze.py INPUT [--ref REF] [--summary]
  INPUT / REF: a .png file, a folder of .png files (sorted by name), or a .npy batch:
    [N,H,W,3] or [N,3,H,W]; uint8 in [0,255], or float in [0,1] (float with min < 0 is taken
    as [-1,1]). A single .npy image [H,W,3] / [3,H,W] is a batch of one.
  Output: one JSON object per line per image: {"i": k, "file": name-or-null, <analyze fields>}
  and with --ref (same number of images) also the compare() fields against REF image k.
  --summary adds a last line {"summary": {...}} with counts of each class (and with --ref the
  median centroid shift and mean background PSNR).
  Exit status 0; 2 on unreadable input.
"""
import json
import math
import os
import sys

import numpy as np

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 225), "yellow": (240, 205, 30)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (22, 22, 22), "gray": (128, 128, 128)}
FG_THRESHOLD = 60.0


def to_float(img):
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def psnr(a, b, mask=None):
    a, b = to_float(a), to_float(b)
    d = (a - b) ** 2
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.sum() == 0:
            return float("nan")
        d = d[m]
    mse = float(d.mean())
    return 100.0 if mse <= 1e-10 else 10 * math.log10(1.0 / mse)


def _nearest(rgb, palette):
    best, bd = None, 1e9
    for k, v in palette.items():
        d = float(np.linalg.norm(np.asarray(rgb, dtype=np.float64) - np.asarray(v)))
        if d < bd:
            best, bd = k, d
    return best, bd


def components(m):
    """Labels of the 4-connected components of a boolean mask -> (labels, sizes by label; label 0
    is the background). Plain BFS: images are small."""
    H, W = m.shape
    lab = np.zeros((H, W), dtype=np.int32)
    sizes = [0]
    ys, xs = np.nonzero(m)
    for y0, x0 in zip(ys, xs):
        if lab[y0, x0]:
            continue
        cur = len(sizes)
        stack = [(y0, x0)]
        lab[y0, x0] = cur
        n = 0
        while stack:
            y, x = stack.pop()
            n += 1
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < H and 0 <= xx < W and m[yy, xx] and not lab[yy, xx]:
                    lab[yy, xx] = cur
                    stack.append((yy, xx))
        sizes.append(n)
    return lab, sizes


def _largest_component(m):
    """Largest 4-connected component of a boolean mask (the first of equal size)."""
    lab, sizes = components(m)
    if len(sizes) == 1:
        return np.zeros_like(m)
    return lab == int(np.argmax(sizes[1:])) + 1


def _dilate(m, r):
    out = m.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def analyze(img):
    x = to_float(img) * 255.0
    H, W, _ = x.shape
    s = W / 64.0
    border = np.concatenate([x[:2].reshape(-1, 3), x[-2:].reshape(-1, 3), x[:, :2].reshape(-1, 3), x[:, -2:].reshape(-1, 3)])
    bg_rgb = np.median(border, axis=0)
    bg, _ = _nearest(bg_rgb, BACKGROUNDS)
    dist = np.linalg.norm(x - bg_rgb, axis=2)
    out = dict(found=False, bg=bg, bg_rgb=[round(float(v), 1) for v in bg_rgb], color=None, rgb=None, color_dist=None,
               shape=None, fill=None, pos=None, cx=None, cy=None, area=0.0, size=None)
    binm = dist > FG_THRESHOLD
    if binm.sum() < 4:
        out["mask"] = np.zeros((H, W))
        return out
    comp = _largest_component(binm)
    region = _dilate(comp, 1)
    solid_d = np.percentile(dist[comp], 75)
    cov = np.clip(dist / max(solid_d, 1e-6), 0, 1) * region
    area = float(cov.sum())
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    cx, cy = float((cov * xx).sum() / area), float((cov * yy).sum() / area)
    solid = comp & (dist >= 0.8 * solid_d)
    if solid.sum() == 0:
        solid = comp
    rgb = x[solid].mean(axis=0)
    color, cd = _nearest(rgb, COLORS)
    ys, xs = np.nonzero(comp & (cov >= 0.5))
    if len(ys) == 0:
        ys, xs = np.nonzero(comp)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    bw, bh = x1 - x0, y1 - y0
    fill = area / float(bw * bh)
    # the row-width taper (25% vs 75% height) backs up the triangle test below
    box = cov[y0:y1, x0:x1]
    rows = box.sum(axis=1)
    top = rows[int(0.25 * bh)] if bh > 3 else 1.0
    bot = rows[min(bh - 1, int(0.75 * bh))] if bh > 3 else 1.0
    taper = top / max(bot, 1e-6)
    # Coverage of the bounding box outside its inscribed ellipse, top and bottom half: a circle
    # leaves it empty, a square fills it (a rounded, VAE-softened square still > 0.5), a point-up
    # triangle fills only the bottom. Corner patches alone called 7% of VAE round trips of small
    # squares circles (calibrated on held-out pictures and their round trips: see MODEL_CARD.md).
    yy_b, xx_b = np.mgrid[0:bh, 0:bw] + 0.5
    outside = ((yy_b - bh / 2) / (bh / 2)) ** 2 + ((xx_b - bw / 2) / (bw / 2)) ** 2 > 1.0
    upper = yy_b < bh / 2
    out_top = float(box[outside & upper].mean()) if (outside & upper).any() else 0.0
    out_bot = float(box[outside & ~upper].mean()) if (outside & ~upper).any() else 0.0
    if out_top < 0.15 and out_bot > 0.45 or taper < 0.5:
        shape = "triangle"
    elif 0.5 * (out_top + out_bot) > 0.47:
        shape = "square"
    else:
        shape = "circle"
    a64 = area / (s * s)
    if shape == "circle":
        req = math.sqrt(a64 / math.pi)
    elif shape == "square":
        req = math.sqrt(a64) / 1.8
    else:
        req = math.sqrt(a64 / (3 * math.sqrt(3) / 4)) / 1.3
    pos = "left" if cx < 24.5 * s else ("right" if cx > 39.5 * s else "center")
    out.update(found=True, color=color, rgb=[round(float(v), 1) for v in rgb], color_dist=round(cd, 1), shape=shape,
               fill=round(fill, 3), pos=pos, cx=round(cx, 2), cy=round(cy, 2), area=round(area, 1),
               size="small" if req < 9.5 else "large", taper=round(float(taper), 3))
    out["mask"] = cov
    return out


def compare(a, b, ra=None, rb=None):
    ra = ra or analyze(a)
    rb = rb or analyze(b)
    union = _dilate((ra["mask"] > 0) | (rb["mask"] > 0), 2)
    shift = float("nan")
    if ra["found"] and rb["found"]:
        shift = math.hypot(ra["cx"] - rb["cx"], ra["cy"] - rb["cy"])
    return dict(centroid_shift=round(shift, 3), bg_psnr=round(psnr(a, b, ~union), 3), psnr=round(psnr(a, b), 3),
                same_shape=ra["shape"] == rb["shape"], same_color=ra["color"] == rb["color"],
                same_bg=ra["bg"] == rb["bg"], same_pos=ra["pos"] == rb["pos"])


def load_batch(path):
    """-> (list of HxWx3 float arrays in [0,1], list of file names or None)."""
    if os.path.isdir(path):
        names = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
        return [_load_png(os.path.join(path, f)) for f in names], names
    if path.lower().endswith(".png"):
        return [_load_png(path)], [os.path.basename(path)]
    if path.lower().endswith(".npy"):
        a = np.load(path)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"{path}: expected [N,H,W,3] or [N,3,H,W], got shape {a.shape}")
        if a.shape[1] == 3 and a.shape[3] != 3:
            a = a.transpose(0, 2, 3, 1)
        if a.dtype == np.uint8:
            a = a.astype(np.float64) / 255.0
        else:
            a = a.astype(np.float64)
            if a.min() < 0:
                a = (a + 1) / 2
            a = np.clip(a, 0, 1)
        return list(a), [None] * len(a)
    raise ValueError(f"{path}: not a .png, a folder of .png files, or a .npy batch")


def _load_png(p):
    from PIL import Image
    return np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255.0


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Analyze shapes-64 pictures (see module docstring).")
    ap.add_argument("input")
    ap.add_argument("--ref")
    ap.add_argument("--summary", action="store_true")
    a = ap.parse_args(argv)
    try:
        imgs, names = load_batch(a.input)
        refs = load_batch(a.ref)[0] if a.ref else None
    except Exception as e:  # noqa: BLE001
        print(f"analyze.py: {e}", file=sys.stderr)
        return 2
    if refs is not None and len(refs) != len(imgs):
        print(f"analyze.py: {len(imgs)} images but {len(refs)} references", file=sys.stderr)
        return 2
    counts, shifts, bgp = {}, [], []
    for k, im in enumerate(imgs):
        r = analyze(im)
        rec = {"i": k, "file": names[k]}
        rec.update({kk: v for kk, v in r.items() if kk != "mask"})
        if refs is not None:
            c = compare(im, refs[k], ra=r)
            rec.update(c)
            shifts.append(c["centroid_shift"])
            bgp.append(c["bg_psnr"])
        for f in ("shape", "color", "pos", "bg"):
            counts.setdefault(f, {}).setdefault(str(r[f]), 0)
            counts[f][str(r[f])] += 1
        print(json.dumps(rec))
    if a.summary:
        s = {"n": len(imgs), "counts": counts}
        if refs is not None:
            fs = [v for v in shifts if not math.isnan(v)]
            s["median_centroid_shift"] = float(np.median(fs)) if fs else None
            bs = [v for v in bgp if not math.isnan(v)]
            s["mean_bg_psnr"] = float(np.mean(bs)) if bs else None
        print(json.dumps({"summary": s}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
