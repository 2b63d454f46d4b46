"""Seeded generator of 64x64 shape pictures with captions (the training and test data of the
shapes-64 model).

Every image is a pure function of one integer index: its attributes are drawn from
numpy.random.default_rng(index), so `generate(range(a, b))` always returns the same pictures.
Split by index range:
    TRAIN indices  [0, 1_000_000_000)                       (training only ever uses these)
    TEST  indices  [TEST_START = 1_000_000_000, ...)        (held out: evaluation only)

Picture: one shape (circle | square | triangle) in one colour (red | green | blue | yellow, with
a small per-image jitter) at a horizontal position bin (left | center | right, centroid x in
[14,20] / [29,35] / [44,50] px, y in [22,42]) and a size (small: radius 7-9 px, large: 10-13 px)
on a flat background (white | black | gray). Rendered at 4x (256x256) and average-pooled, so
edges are anti-aliased. A triangle is equilateral, point up, with its centroid at (cx, cy).

Captions (function `caption(attrs, rng)`) come from several templates and many are partial, so
prompts such as "blue", "a circle", "a red square on the left", "on a black background" are in
distribution. Position words: "on the left" / "on the right" / "in the middle" / "in the center".

API
    attributes(index) -> dict(shape, color, pos, size, bg, cx, cy, r, rgb, bg_rgb)
    render(attrs_list) -> float32 tensor [N, 3, 64, 64] in [0, 1]
    generate(indices) -> (images [N,3,64,64] in [0,1], list of attribute dicts)
    caption(attrs, rng) -> str
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 64
SS = 4
TEST_START = 1_000_000_000
SHAPES = ["circle", "square", "triangle"]
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 225), "yellow": (240, 205, 30)}
BACKGROUNDS = {"white": (245, 245, 245), "black": (22, 22, 22), "gray": (128, 128, 128)}
POSITIONS = {"left": (14, 20), "center": (29, 35), "right": (44, 50)}
SIZES = {"small": (7.0, 9.0), "large": (10.0, 13.0)}
POS_WORDS = {"left": ["on the left"], "right": ["on the right"], "center": ["in the middle", "in the center"]}


def attributes(index):
    rng = np.random.default_rng(int(index))
    shape = SHAPES[rng.integers(3)]
    color = list(COLORS)[rng.integers(4)]
    bg = list(BACKGROUNDS)[rng.integers(3)]
    pos = list(POSITIONS)[rng.integers(3)]
    size = list(SIZES)[rng.integers(2)]
    lo, hi = POSITIONS[pos]
    cx = float(rng.uniform(lo, hi))
    cy = float(rng.uniform(22, 42))
    r = float(rng.uniform(*SIZES[size]))
    jit = rng.integers(-12, 13, size=3)
    rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jit))
    bjit = int(rng.integers(-8, 9))
    bg_rgb = tuple(int(np.clip(c + bjit, 0, 255)) for c in BACKGROUNDS[bg])
    return dict(index=int(index), shape=shape, color=color, pos=pos, size=size, bg=bg,
                cx=cx, cy=cy, r=r, rgb=rgb, bg_rgb=bg_rgb)


def shape_masks(attrs_list, size=SIZE, ss=SS):
    """Anti-aliased coverage masks [N, 1, size, size] in [0, 1]."""
    n = len(attrs_list)
    hs = size * ss
    c = (torch.arange(hs, dtype=torch.float32) + 0.5) / ss  # pixel-space coords of subsamples
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    cx = torch.tensor([a["cx"] for a in attrs_list]).view(n, 1, 1)
    cy = torch.tensor([a["cy"] for a in attrs_list]).view(n, 1, 1)
    r = torch.tensor([a["r"] for a in attrs_list]).view(n, 1, 1)
    kind = torch.tensor([SHAPES.index(a["shape"]) for a in attrs_list]).view(n, 1, 1)
    dx, dy = xx - cx, yy - cy
    circle = dx * dx + dy * dy <= r * r
    square = (dx.abs() <= r * 0.9) & (dy.abs() <= r * 0.9)
    R = r * 1.3  # circumradius of the triangle
    s3 = math.sqrt(3.0)
    # equilateral, point up: inside if below the two slanted edges and above the base
    tri = (dy <= R / 2) & (s3 * dx - dy <= R) & (-s3 * dx - dy <= R)
    m = torch.where(kind == 0, circle, torch.where(kind == 1, square, tri)).float()
    return F.avg_pool2d(m.unsqueeze(1), ss)


def render(attrs_list):
    m = shape_masks(attrs_list)
    fg = torch.tensor([a["rgb"] for a in attrs_list], dtype=torch.float32).view(-1, 3, 1, 1) / 255
    bg = torch.tensor([a["bg_rgb"] for a in attrs_list], dtype=torch.float32).view(-1, 3, 1, 1) / 255
    return m * fg + (1 - m) * bg


def generate(indices):
    attrs = [attributes(i) for i in indices]
    out = []
    for k in range(0, len(attrs), 256):
        out.append(render(attrs[k:k + 256]))
    return torch.cat(out), attrs


def caption(a, rng):
    """A random caption for attributes a; rng: numpy Generator. Often partial."""
    u = rng.random
    use_color = u() < 0.8
    use_shape = u() < 0.8
    use_pos = u() < 0.7
    use_size = u() < 0.25
    use_bg = u() < 0.3
    if not (use_color or use_shape or use_pos or use_bg):
        use_color = True
    pos_words = POS_WORDS[a["pos"]]
    pos_phrase = pos_words[rng.integers(len(pos_words))]
    bg_phrase = f"on a {a['bg']} background" if u() < 0.7 else f"on {a['bg']}"
    adj = ([a["size"]] if use_size else []) + ([a["color"]] if use_color else [])
    if use_shape:
        noun = a["shape"]
    elif u() < 0.5 and adj:
        noun = None  # bare adjective(s): "blue", "small red"
    else:
        noun = ["shape", "object", "thing"][rng.integers(3)]
    if noun is None:
        parts = [" ".join(adj)]
    else:
        parts = [("a " if u() < 0.8 else "") + " ".join(adj + [noun])]
    if use_pos:
        if noun is None or not (use_color or use_shape or use_size):
            parts = parts if (use_color or use_size) else []
        parts.append(pos_phrase)
        if u() < 0.15 and len(parts) == 2:
            parts = [parts[1] + ",", parts[0]] if u() < 0.5 else [parts[0] + ",", parts[1]]
    if use_bg:
        parts.append(bg_phrase)
    text = " ".join(p for p in parts if p)
    r = u()
    if r < 0.1:
        text = "a picture of " + text if not text.startswith("a ") else "a picture of " + text
    elif r < 0.15:
        text = "an image of " + text
    return text.strip()


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for i in range(20):
        a = attributes(i)
        print(a["color"], a["shape"], a["pos"], a["size"], a["bg"], "|", caption(a, rng))
    import time
    t = time.time()
    x, _ = generate(range(1024))
    print(x.shape, x.min().item(), x.max().item(), f"{time.time() - t:.2f}s for 1024")
