"""Seeded generator of 64x64 scenes with one or two shapes and captions: the training and test
data of the shapes2-64 model (data.py stays as it is, so shapes-64 remains reproducible).

Every picture is a pure function of one integer index: its attributes come from
numpy.random.default_rng(index), so `generate(range(a, b))` always returns the same pictures.
Split by index range, as data.py:
    TRAIN indices  [0, 1_000_000_000)                  (training only ever uses these)
    TEST  indices  [TEST_START = 1_000_000_000, ...)   (held out: evaluation only)

What a picture holds (and why; shapes-64's failures are in the model card's successor notes):
  - 1 object (half the pictures) or 2 (the other half; they never overlap: their bounding
    circles are >= GAP px apart). Two-object prompts generated noise with shapes-64, which never
    saw two objects.
  - shape circle | square | triangle, colour red | green | blue | yellow with +-14 per-channel
    jitter (as data.py, same palette).
  - size continuous: "radius" r in [4, 22] px for one object, [4, 14] for each of two (half
    the time log-uniform, half uniform) (square half-side 0.9 r, triangle circumradius 1.3 r, as data.py). shapes-64 saw only
    r in [7, 13] and failed at r = 4 and r = 22. Size words: small (r < 8.5), medium, large
    (r >= 14).
  - position continuous; the word comes from the centroid x as analyze.py reads it:
    left (< 24.5), middle/center, right (> 39.5). One object: a position bin is drawn uniformly
    among the bins the object fits in, then x uniformly in that bin; y uniform wherever it fits.
    Two objects: two different bins, so each object has its own position word.
  - background: 55% a neutral grey with continuous value 14..246 (word by lightness: black,
    dark gray, gray, light gray, white), 45% a light tint (sky blue, beige, light pink, pale
    green, lavender) with +-10 jitter. Every background is >= ~100 RGB units from every object
    colour. shapes-64 saw only white / black / gray and its edits failed on light gray, sky
    blue and beige.
Rendered at 4x (256x256) and average-pooled (anti-aliased edges), objects composited over the
background one after the other (they do not overlap, so the order does not matter).

Captions (`caption(attrs, rng)`): each object named by its own phrase ("a small red circle on
the left"); two objects joined by "and" in either order; many partial (colour only, shape only,
position, size, background "on a light gray background" / "on sky blue", "two shapes", one of
the two objects only). Caption dropout for classifier-free guidance is train.py's job (10%).

API
    attributes(index) -> dict(index, n, bg, bg_kind, bg_rgb, objects=[obj, ...]) with objects
        sorted left to right; obj = dict(shape, color, rgb, cx, cy, r, pos, size, bbox) where bbox
        = [x0, y0, x1, y1] in pixels (the shape's exact extent). One-object pictures also carry
        the object's fields at the top level (shape, color, ...), as data.py's attributes do.
    render(attrs_list) -> float32 tensor [N, 3, 64, 64] in [0, 1]
    object_masks(attrs_list) -> float32 tensor [N, 2, 64, 64]: anti-aliased coverage of object
        0 and object 1 (zeros for a missing second object): ground truth for scoring.
    generate(indices) -> (images [N,3,64,64] in [0,1], list of attribute dicts)
    caption(attrs, rng) -> str
    bg_word(rgb) -> the background word for an RGB triple (what analysers should call it)
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 64
SS = 4
TEST_START = 1_000_000_000
SHAPES = ["circle", "square", "triangle"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 225), "yellow": (240, 205, 30)}
# neutral greys: word by value (upper bounds, exclusive)
GREY_BINS = [("black", 48), ("dark gray", 100), ("gray", 156), ("light gray", 212), ("white", 256)]
GREY_RANGE = (14, 246)
TINTS = {"sky blue": (135, 200, 235), "beige": (225, 210, 170), "light pink": (245, 195, 205),
         "pale green": (185, 225, 180), "lavender": (205, 195, 240)}
P_GREY = 0.55
BACKGROUNDS = [w for w, _ in GREY_BINS] + list(TINTS)
# reference colours for nearest-background naming (greys at their bin centres)
BG_REFERENCE = {"black": (22, 22, 22), "dark gray": (74, 74, 74), "gray": (128, 128, 128),
                "light gray": (184, 184, 184), "white": (240, 240, 240), **TINTS}
POS_BINS = {"left": (0.0, 24.5), "center": (24.5, 39.5), "right": (39.5, 64.0)}
POS_WORDS = {"left": ["on the left"], "right": ["on the right"], "center": ["in the middle", "in the center"]}
R_ONE = (4.0, 22.0)
R_TWO = (4.0, 14.0)
SIZE_BINS = [("small", 8.5), ("medium", 14.0), ("large", 1e9)]
SIZE_WORDS = {"small": ["small", "small", "tiny"], "medium": ["medium"], "large": ["large", "large", "big"]}
MARGIN = 1.5  # px between a shape and the picture's edge
GAP = 2.0     # px between the bounding circles of two objects
S3 = math.sqrt(3.0)


def extent(shape, r):
    """(half width, up, down) of a shape of 'radius' r around its centroid."""
    if shape == "circle":
        return r, r, r
    if shape == "square":
        return 0.9 * r, 0.9 * r, 0.9 * r
    R = 1.3 * r  # triangle circumradius; point up, centroid at the circumcentre
    return R * S3 / 2, R, R / 2


def bound_radius(shape, r):
    return {"circle": r, "square": 0.9 * math.sqrt(2) * r, "triangle": 1.3 * r}[shape]


def size_word(r):
    for w, hi in SIZE_BINS:
        if r < hi:
            return w
    return SIZE_BINS[-1][0]


def pos_word(cx):
    return "left" if cx < 24.5 else ("right" if cx > 39.5 else "center")


def bg_word(rgb):
    """Background word for an RGB triple: a grey bin if nearly neutral, else the nearest tint."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.max() - rgb.min() < 12:
        v = rgb.mean()
        for w, hi in GREY_BINS:
            if v < hi:
                return w
    best, bd = None, 1e9
    for k, v in BG_REFERENCE.items():
        d = float(np.linalg.norm(rgb - np.asarray(v)))
        if d < bd:
            best, bd = k, d
    return best


def _background(rng):
    if rng.random() < P_GREY:
        v = float(rng.uniform(*GREY_RANGE))
        j = rng.integers(-2, 3, size=3)
        rgb = tuple(int(np.clip(round(v) + d, 0, 255)) for d in j)
        word = next(w for w, hi in GREY_BINS if v < hi)
        return word, "grey", rgb
    name = list(TINTS)[rng.integers(len(TINTS))]
    j = rng.integers(-10, 11, size=3)
    rgb = tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(TINTS[name], j))
    return name, "tint", rgb


def _object(rng, shape, r, bin_name):
    """Place a shape of radius r with its centroid x in bin `bin_name` (None: anywhere);
    returns None if it does not fit there."""
    hw, up, down = extent(shape, r)
    xlo, xhi = hw + MARGIN, SIZE - hw - MARGIN
    if bin_name is not None:
        blo, bhi = POS_BINS[bin_name]
        xlo, xhi = max(xlo, blo + 0.01), min(xhi, bhi - 0.01)
    ylo, yhi = up + MARGIN, SIZE - down - MARGIN
    if xhi <= xlo or yhi <= ylo:
        return None
    return float(rng.uniform(xlo, xhi)), float(rng.uniform(ylo, yhi))


def _fits(shape, r, bin_name):
    hw, _, _ = extent(shape, r)
    blo, bhi = POS_BINS[bin_name]
    return max(hw + MARGIN, blo + 0.01) < min(SIZE - hw - MARGIN, bhi - 0.01)


def _colour(rng):
    color = list(COLORS)[rng.integers(4)]
    jit = rng.integers(-14, 15, size=3)
    return color, tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jit))


def _radius(rng, lo_hi):
    """Half the time log-uniform (more small objects), half uniform (more large ones)."""
    lo, hi = lo_hi
    if rng.random() < 0.5:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def _finish(shape, color, rgb, cx, cy, r):
    hw, up, down = extent(shape, r)
    return dict(shape=shape, color=color, rgb=rgb, cx=cx, cy=cy, r=r, pos=pos_word(cx), size=size_word(r),
                bbox=[round(cx - hw, 3), round(cy - up, 3), round(cx + hw, 3), round(cy + down, 3)])


def attributes(index):
    rng = np.random.default_rng(int(index))
    bg, bg_kind, bg_rgb = _background(rng)
    n = 1 if rng.random() < 0.5 else 2
    objs = []
    if n == 1:
        shape = SHAPES[rng.integers(3)]
        color, rgb = _colour(rng)
        r = _radius(rng, R_ONE)
        bins = [b for b in POS_BINS if _fits(shape, r, b)]
        b = bins[rng.integers(len(bins))]
        cx, cy = _object(rng, shape, r, b)
        objs.append(_finish(shape, color, rgb, cx, cy, r))
    else:
        pair = [("left", "center"), ("left", "right"), ("center", "right")][rng.integers(3)]
        spec = []
        for b in pair:
            shape = SHAPES[rng.integers(3)]
            color, rgb = _colour(rng)
            r = _radius(rng, R_TWO)
            spec.append([shape, color, rgb, r, b])
        for attempt in range(400):
            if attempt and attempt % 40 == 0:  # rarely: shrink both until they fit side by side
                for s in spec:
                    s[3] = max(R_TWO[0], s[3] * 0.9)
            p = [_object(rng, s[0], s[3], s[4]) for s in spec]
            if None in p:
                continue
            d = math.hypot(p[0][0] - p[1][0], p[0][1] - p[1][1])
            if d >= bound_radius(spec[0][0], spec[0][3]) + bound_radius(spec[1][0], spec[1][3]) + GAP:
                break
        else:
            raise RuntimeError(f"scene {index}: could not place two objects")
        for s, (cx, cy) in zip(spec, p):
            objs.append(_finish(s[0], s[1], s[2], cx, cy, s[3]))
    objs.sort(key=lambda o: o["cx"])
    a = dict(index=int(index), n=n, bg=bg, bg_kind=bg_kind, bg_rgb=bg_rgb, objects=objs)
    if n == 1:
        a.update({k: v for k, v in objs[0].items() if k != "bbox"})
    return a


def _coverage(o, size=SIZE, ss=SS):
    """Anti-aliased coverage of one object: (y0, x0, patch [h, w] float64 in [0, 1]), computed on
    the 4x-supersampled grid of the pixels its bounding box touches only (fast)."""
    hw, up, down = extent(o["shape"], o["r"])
    cx, cy, r = o["cx"], o["cy"], o["r"]
    x0, x1 = max(0, int(math.floor(cx - hw))), min(size, int(math.ceil(cx + hw)) + 1)
    y0, y1 = max(0, int(math.floor(cy - up))), min(size, int(math.ceil(cy + down)) + 1)
    xs = (np.arange(x0 * ss, x1 * ss) + 0.5) / ss - cx
    ys = (np.arange(y0 * ss, y1 * ss) + 0.5) / ss - cy
    dy, dx = ys[:, None], xs[None, :]
    if o["shape"] == "circle":
        m = dx * dx + dy * dy <= r * r
    elif o["shape"] == "square":
        m = (np.abs(dx) <= r * 0.9) & (np.abs(dy) <= r * 0.9)
    else:
        R = r * 1.3
        m = (dy <= R / 2) & (S3 * dx - dy <= R) & (-S3 * dx - dy <= R)
    cov = m.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return y0, x0, cov


def object_masks(attrs_list):
    out = np.zeros((len(attrs_list), 2, SIZE, SIZE), dtype=np.float32)
    for i, a in enumerate(attrs_list):
        for k, o in enumerate(a["objects"]):
            y0, x0, cov = _coverage(o)
            out[i, k, y0:y0 + cov.shape[0], x0:x0 + cov.shape[1]] = cov
    return torch.from_numpy(out)


def render(attrs_list):
    out = np.empty((len(attrs_list), SIZE, SIZE, 3), dtype=np.float64)
    for i, a in enumerate(attrs_list):
        img = out[i]
        img[:] = np.asarray(a["bg_rgb"], dtype=np.float64) / 255
        for o in a["objects"]:
            y0, x0, cov = _coverage(o)
            h, w = cov.shape
            fg = np.asarray(o["rgb"], dtype=np.float64) / 255
            img[y0:y0 + h, x0:x0 + w] = cov[..., None] * fg + (1 - cov[..., None]) * img[y0:y0 + h, x0:x0 + w]
    return torch.from_numpy(out.astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def generate(indices):
    attrs = [attributes(i) for i in indices]
    out = [render(attrs[k:k + 128]) for k in range(0, len(attrs), 128)]
    return torch.cat(out), attrs


# ----------------------------------------------------------------------------- captions
def _phrase(o, rng, p_color, p_shape, p_pos, p_size, article=True):
    """Phrase naming one object, e.g. "a small red circle on the left", "blue on the right",
    "a triangle". Always names the colour or the shape (or both)."""
    u = rng.random
    use_color, use_shape = u() < p_color, u() < p_shape
    if not (use_color or use_shape):
        use_color, use_shape = (True, False) if u() < 0.5 else (False, True)
    use_pos, use_size = u() < p_pos, u() < p_size
    adj = []
    if use_size:
        ws = SIZE_WORDS[o["size"]]
        adj.append(ws[rng.integers(len(ws))])
    if use_color:
        adj.append(o["color"])
    if use_shape:
        noun = o["shape"]
    elif u() < 0.5:
        noun = None  # bare adjective(s): "blue", "small red"
    else:
        noun = ["shape", "object", "thing"][rng.integers(3)]
    words = adj + ([noun] if noun else [])
    text = " ".join(words)
    if noun and article:
        text = "a " + text
    if use_pos:
        pw = POS_WORDS[o["pos"]]
        text += " " + pw[rng.integers(len(pw))]
    return text


def _bg_phrase(a, rng):
    return f"on a {a['bg']} background" if rng.random() < 0.7 else f"on {a['bg']}"


def caption(a, rng):
    """A random caption for attributes a; rng: numpy Generator. Often partial."""
    u = rng.random
    objs = a["objects"]
    use_bg = u() < 0.35
    if len(objs) == 1:
        o = objs[0]
        if use_bg and u() < 0.12:
            text = ""  # background only: "on a beige background"
        else:
            text = _phrase(o, rng, 0.8, 0.8, 0.7, 0.3)
            if u() < 0.1 and text.startswith("a "):
                # position first: "on the left, a red circle"
                for pw in ("on the left", "on the right", "in the middle", "in the center"):
                    if text.endswith(" " + pw):
                        text = pw + ", " + text[: -len(pw) - 1]
                        break
    else:
        r = u()
        if r < 0.78:
            order = objs if u() < 0.6 else objs[::-1]  # left to right more often, but both
            p_pos = 0.8
            text = " and ".join(_phrase(o, rng, 0.85, 0.85, p_pos, 0.2) for o in order)
        elif r < 0.88:
            # count phrases: "two shapes", "two red shapes", "two circles"
            same_shape = objs[0]["shape"] == objs[1]["shape"]
            same_color = objs[0]["color"] == objs[1]["color"]
            words = ["two"]
            if same_color and u() < 0.7:
                words.append(objs[0]["color"])
            words.append(PLURAL[objs[0]["shape"]] if same_shape and u() < 0.8 else ["shapes", "objects"][rng.integers(2)])
            text = " ".join(words)
        else:
            # one of the two named (as a user describing the object they care about would)
            o = objs[rng.integers(2)]
            text = _phrase(o, rng, 0.9, 0.9, 0.9, 0.2)
    if use_bg:
        text = (text + " " + _bg_phrase(a, rng)).strip()
    if not text:
        text = _phrase(objs[0], rng, 1.0, 0.5, 0.5, 0.0)
    r = u()
    if r < 0.08:
        text = "a picture of " + text
    elif r < 0.12:
        text = "an image of " + text
    return text


def full_caption(a, with_bg=True):
    """The deterministic complete caption (every object's size-free colour, shape, position,
    left to right, and the background): what evaluation prompts and edit sources use."""
    parts = [f"a {o['color']} {o['shape']} {POS_WORDS[o['pos']][0]}" for o in a["objects"]]
    text = " and ".join(parts)
    if with_bg:
        text += f" on a {a['bg']} background"
    return text


VOCAB_WORDS = (list(COLORS) + SHAPES + list(PLURAL.values()) + BACKGROUNDS
               + [w for ws in SIZE_WORDS.values() for w in ws]
               + ["left", "right", "middle", "center", "and", "two", "shape", "shapes", "object", "objects", "thing",
                  "a", "an", "of", "on", "in", "the", "picture", "image", "background", ","])


if __name__ == "__main__":
    import collections
    import time
    rng = np.random.default_rng(0)
    for i in range(24):
        a = attributes(i)
        desc = "; ".join(f"{o['color']} {o['shape']} {o['pos']} r={o['r']:.1f}" for o in a["objects"])
        print(f"{a['bg']:>10} | {desc:<60} | {caption(a, rng)}")
    t = time.time()
    x, A = generate(range(2048))
    print(x.shape, f"{time.time() - t:.2f}s for 2048")
    c = collections.Counter()
    for a in A:
        c[f"n={a['n']}"] += 1
        c[a["bg"]] += 1
        for o in a["objects"]:
            c[o["pos"]] += 1
            c[o["size"]] += 1
    print(dict(c))
    print("held-out:", full_caption(attributes(TEST_START)))
