"""Write held-out shapes-64 pictures for the evaluation (eval/run.ts) and the default-model test.

    /usr/bin/python3 eval/make_heldout.py --out DIR --n N [--offset K]

Case k (0 <= k < N) is data.py index TEST_START + K + k: held out, never seen in training (train.py
only draws indices below data.TEST_START). Writes DIR/NNNN.png (64x64 RGB, rendered by data.py,
rounded to 8 bits), the same pixels as one batch DIR/heldout.npy (uint8 [N,64,64,3]), and DIR/heldout.json: {"offset", "n", "cases": [{file, index, shape, color,
pos, size, bg, cx, cy, r, rgb, bg_rgb, caption, newColor}]} where `caption` is the full caption
"a <colour> <shape> <on the left|in the middle|on the right> on a <bg> background" and
`newColor` a deterministic other colour (for colour edits; cycles through the three others).
Prints the JSON path.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "tinysd"))
import numpy as np  # noqa: E402
import data  # noqa: E402

POS_PHRASE = {"left": "on the left", "center": "in the middle", "right": "on the right"}


def caption(a):
    return f"a {a['color']} {a['shape']} {POS_PHRASE[a['pos']]} on a {a['bg']} background"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--offset", type=int, default=0, help="first case is data index TEST_START + offset")
    a = ap.parse_args(argv)
    if a.n < 1 or a.offset < 0:
        ap.error("--n must be >= 1 and --offset >= 0")
    from PIL import Image
    os.makedirs(a.out, exist_ok=True)
    indices = [data.TEST_START + a.offset + k for k in range(a.n)]
    assert all(i >= data.TEST_START for i in indices)
    imgs, attrs = data.generate(indices)
    colors = list(data.COLORS)
    batch = (imgs.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    np.save(os.path.join(a.out, "heldout.npy"), batch)
    cases = []
    for k, (hwc, at) in enumerate(zip(batch, attrs)):
        name = f"{k:04d}.png"
        Image.fromarray(hwc).save(os.path.join(a.out, name))
        new = colors[(colors.index(at["color"]) + 1 + (k % 3)) % 4]
        cases.append(dict(file=name, **{kk: (list(v) if isinstance(v, tuple) else v) for kk, v in at.items()},
                          caption=caption(at), newColor=new))
    path = os.path.join(a.out, "heldout.json")
    with open(path, "w") as f:
        json.dump({"offset": a.offset, "n": a.n, "testStart": data.TEST_START, "cases": cases}, f, indent=1)
        f.write("\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
