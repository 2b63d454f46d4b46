"""How often analyze.py names the right shape, colour and position: on held-out pictures (ground
truth from data.py) and on their round trips through a bundle's VAE, which soften corners the
way generated and edited pictures do. The evaluation's shape measures are only as good as this.

    /usr/bin/python3 scripts/tinysd/check_analyzer.py [--bundle models/shapes-64] [--n 600] [--offset 300000]

Pictures: data.py indices TEST_START + offset + k (the evaluation's cases use offsets 100000
and 200000; keep these apart). Prints one JSON line per set with the accuracy of each field and
the confusions of shape.
"""
import argparse
import collections
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import analyze  # noqa: E402
import data  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default=os.path.join(HERE, "..", "..", "models", "shapes-64"))
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--offset", type=int, default=300_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    enc = torch.jit.load(os.path.join(args.bundle, "vae_encoder.pt")).eval()
    dec = torch.jit.load(os.path.join(args.bundle, "vae_decoder.pt")).eval()
    x, attrs = data.generate(range(data.TEST_START + args.offset, data.TEST_START + args.offset + args.n))
    with torch.no_grad():
        rec = ((dec(enc(x * 2 - 1)[:, :4]) + 1) / 2).clamp(0, 1)  # posterior mean, as encodeImage
    for name, images in (("originals", x), ("VAE round trips", rec)):
        hits = collections.Counter()
        confusions = collections.Counter()
        for img, a in zip(images, attrs):
            r = analyze.analyze(img.permute(1, 2, 0).numpy())
            for field in ("shape", "color", "pos", "bg"):
                hits[field] += r[field] == a[field]
            if r["shape"] != a["shape"]:
                confusions[f"{a['shape']}->{r['shape']}"] += 1
        print(json.dumps({"set": name, "n": args.n, **{f: round(hits[f] / args.n, 4) for f in ("shape", "color", "pos", "bg")},
                          "shape_confusions": dict(confusions)}), flush=True)


if __name__ == "__main__":
    main()
