"""Synthetic edit pairs for test/eval/strict.test.ts: source and result pictures rendered with
scripts/tinysd/scenes.py, each result a known change of its source, written as eval/strict.py's
CLI reads them (CASES.json, SRC.npy, RES.npy). Prints the case names, one per line.

    /usr/bin/python3 test/eval/strict_pairs.py OUT_DIR
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "tinysd"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "eval"))
import numpy as np  # noqa: E402
import scenes  # noqa: E402
import validate  # noqa: E402

OTHER = {"circle": "triangle", "square": "circle", "triangle": "square"}


def render(a):
    return (scenes.render([a])[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def recolour(a, k, color):
    b = copy.deepcopy(a)
    b["objects"][k]["color"] = color
    b["objects"][k]["rgb"] = scenes.COLORS[color]
    return b


def first(start, ok):
    i = start
    while not ok(scenes.attributes(i)):
        i += 1
    return scenes.attributes(i)


def main(out):
    base = scenes.TEST_START + 40_000_000
    one = first(base, lambda a: a["n"] == 1 and a["shape"] == "circle" and a["objects"][0]["r"] > 9
                and a["bg"] == "light gray" and a["objects"][0]["color"] != "blue")
    two = first(base, lambda a: a["n"] == 2 and a["objects"][0]["shape"] != a["objects"][1]["shape"]
                and "blue" not in (a["objects"][0]["color"], a["objects"][1]["color"]))
    want1 = dict(object=0, color="blue")
    good = recolour(one, 0, "blue")
    cases = []

    def add(name, src_attrs, res, edit):
        cases.append((name, src_attrs, render(src_attrs), res, edit))

    add("perfect recolour", one, render(good), want1)
    add("background +20 grey levels", one, np.clip(render(good).astype(int) + 20, 0, 255).astype(np.uint8), want1)
    shape = copy.deepcopy(good)
    shape["objects"][0]["shape"] = "triangle"
    add("circle to triangle", one, render(shape), want1)
    for dx in (5, 3):
        moved = copy.deepcopy(good)
        moved["objects"][0]["cx"] += dx
        add(f"moved {dx} px", one, render(moved), want1)
    add("colour unchanged", one, render(one), want1)
    extra = copy.deepcopy(good)
    o = extra["objects"][0]
    far = 10.0 if o["cx"] > 32 else 54.0
    extra["objects"].append(dict(shape="square", color="red", rgb=scenes.COLORS["red"], cx=far, cy=10.0, r=4.5))
    add("an object added", one, render(extra), want1)
    add("ellipse instead of the circle", one, render_ellipse(good), want1)
    want2 = dict(object=0, color="blue")
    add("one of two recoloured", two, render(recolour(two, 0, "blue")), want2)
    both = recolour(recolour(two, 0, "blue"), 1, "blue")
    add("one of two: the other recoloured too", two, render(both), want2)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump([dict(attrs=validate_jsonable(c[1]), edit=c[4]) for c in cases], f)
    np.save(os.path.join(out, "src.npy"), np.stack([c[2] for c in cases]))
    np.save(os.path.join(out, "res.npy"), np.stack([c[3] for c in cases]))
    for c in cases:
        print(c[0])


def render_ellipse(a):
    b = copy.deepcopy(a)
    o = b["objects"][0]
    o.update(aspect=1.5, shape="ellipse")
    return (validate._render_custom(b, "ellipse") * 255).round().clip(0, 255).astype(np.uint8)


def validate_jsonable(a):
    return json.loads(json.dumps(a, default=lambda v: v.item() if hasattr(v, "item") else list(v)))


if __name__ == "__main__":
    main(sys.argv[1])
