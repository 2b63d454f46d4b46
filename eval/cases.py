"""Held-out cases of the strict evaluation, from scripts/tinysd/scenes.py (indices >= scenes.TEST_START,
never trained on by either model).

    /usr/bin/python3 eval/cases.py --out DIR --n N [--n-two M] [--set reported|tuning]

Writes DIR/one.npy and DIR/two.npy (uint8 [N, 64, 64, 3]) and DIR/cases.json:
    {"set", "offset", "one": [case, ...], "two": [case, ...]}
case: {"index", "attrs" (scenes.attributes, JSON), "caption" (scenes.full_caption), "edit": {"object", "color"},
       "old", "new", "shape", "target" (the caption with the edited object's colour replaced),
       "bg", "size"}

Which pictures (case k of a set is the first index from OFFSET + k * STRIDE on that fits, so the
first cases of a long run are the cases of a short one):
  one: one object; background scenes.BACKGROUNDS[k % 10] (every background kind, in turn), shape
       scenes.SHAPES[k % 3], size word small / medium / large by (k // 3) % 3 (r 4-22); the new
       colour cycles through the three other colours.
  two: two objects of different shapes (so "+a green square" names one of them), background
       scenes.BACKGROUNDS[k % 10]; object k % 2 (left or right) is edited, to a colour neither
       object has.
Index ranges: reported cases TEST_START + 10_000_000 + ..., tuning cases TEST_START + 20_000_000 + ...
(disjoint; eval/validate.py uses TEST_START + 30_000_000 + ...).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "tinysd"))
import numpy as np  # noqa: E402
import scenes  # noqa: E402

OFFSETS = {"reported": 10_000_000, "tuning": 20_000_000}
STRIDE = 100_000
SIZES = ["small", "medium", "large"]
COLORS = list(scenes.COLORS)


def jsonable(v):
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def recolour_caption(a, k, new):
    """scenes.full_caption with object k's colour replaced."""
    parts = [f"a {new if j == k else o['color']} {o['shape']} {scenes.POS_WORDS[o['pos']][0]}"
             for j, o in enumerate(a["objects"])]
    return " and ".join(parts) + f" on a {a['bg']} background"


def find(start, ok):
    i = start
    while not ok(scenes.attributes(i)):
        i += 1
        if i - start >= STRIDE:
            raise RuntimeError(f"no fitting scene in [{start}, {start + STRIDE})")
    return scenes.attributes(i)


def one_case(base, k):
    bg, shape, size = scenes.BACKGROUNDS[k % 10], scenes.SHAPES[k % 3], SIZES[(k // 3) % 3]
    a = find(base + k * STRIDE, lambda a: a["n"] == 1 and a["bg"] == bg and a["shape"] == shape and a["size"] == size)
    o = a["objects"][0]
    others = [c for c in COLORS if c != o["color"]]
    new = others[k % 3]
    return dict(index=a["index"], attrs=jsonable(a), caption=scenes.full_caption(a), edit=dict(object=0, color=new),
                old=o["color"], new=new, shape=o["shape"], target=recolour_caption(a, 0, new), bg=a["bg"],
                size=o["size"])


def two_case(base, k):
    bg = scenes.BACKGROUNDS[k % 10]
    a = find(base + k * STRIDE, lambda a: a["n"] == 2 and a["bg"] == bg and a["objects"][0]["shape"] != a["objects"][1]["shape"])
    e = k % 2
    o = a["objects"][e]
    free = [c for c in COLORS if c not in (a["objects"][0]["color"], a["objects"][1]["color"])]
    new = free[k % len(free)]
    return dict(index=a["index"], attrs=jsonable(a), caption=scenes.full_caption(a), edit=dict(object=e, color=new),
                old=o["color"], new=new, shape=o["shape"], target=recolour_caption(a, e, new), bg=a["bg"],
                size=o["size"])


def images(attrs_list):
    x = scenes.render(attrs_list)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def make(out, n, n_two, which="reported"):
    base = scenes.TEST_START + OFFSETS[which]
    assert base >= scenes.TEST_START
    one = [one_case(base, k) for k in range(n)]
    two = [two_case(base + 5_000_000, k) for k in range(n_two)]
    os.makedirs(out, exist_ok=True)
    for name, cs in (("one", one), ("two", two)):
        arr = images([c["attrs"] for c in cs]) if cs else np.zeros((0, 64, 64, 3), np.uint8)
        np.save(os.path.join(out, f"{name}.npy"), arr)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(dict(set=which, offset=OFFSETS[which], testStart=scenes.TEST_START, one=one, two=two), f)
    return one, two


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--n-two", type=int)
    ap.add_argument("--set", choices=list(OFFSETS), default="reported")
    a = ap.parse_args(argv)
    make(a.out, a.n, a.n if a.n_two is None else a.n_two, a.set)
    print(os.path.join(a.out, "cases.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
