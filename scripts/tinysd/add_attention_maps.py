"""Re-export a shapes-64 bundle's UNet so it also returns its cross-attention maps (bundle format
version 2, docs/bundle-format.md "Cross-attention maps"), from the bundle's own weights: no
retraining. The maps are those of models.UNet.MAP_LAYERS (the 8x8 level, down and up), averaged
over heads and layers, [B, L, h, w] (crossAttentionMaps.downsample 1).

usage: /usr/bin/python3 scripts/tinysd/add_attention_maps.py BUNDLE_DIR [--out OUT_DIR]

Writes OUT_DIR (default: BUNDLE_DIR, in place): unet.pt replaced, model.json with formatVersion 2
and crossAttentionMaps; the other files are copied unchanged. Checks that the new UNet's noise
equals the old one's bit for bit on random inputs at several batch and latent sizes, that the
maps have the declared shape and sum to 1 over the tokens (softmax probabilities), and that
gradients still reach the parameters (Imagic fine-tunes them).
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import models  # noqa: E402
from train import CONFIGS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    src, out = args.bundle, args.out or args.bundle
    with open(os.path.join(src, "model.json")) as f:
        mj = json.load(f)
    if mj.get("formatVersion") != 1 or mj.get("name") != "shapes-64":
        raise SystemExit("%s: expected a formatVersion 1 shapes-64 bundle, got %s version %s"
                         % (src, mj.get("name"), mj.get("formatVersion")))
    cfg = CONFIGS["shapes-64"]
    old = torch.jit.load(os.path.join(src, "unet.pt"))
    unet = models.UNet(cfg["z"], tuple(cfg["unet_ch"]), cfg["ctx_dim"], cfg["heads"], cfg["latent_size"])
    unet.load_state_dict(old.state_dict(), strict=True)
    unet.eval()
    scripted = torch.jit.script(models.WithCrossAttentionMaps(unet))

    L, D = mj["textEncoder"]["maxLength"], mj["textEncoder"]["hiddenSize"]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for B, h, w in ((1, 8, 8), (3, 16, 16), (2, 16, 8)):
            x = torch.randn(B, 4, h, w, generator=gen)
            t = torch.randint(0, 1000, (B,), generator=gen)
            e = torch.randn(B, L, D, generator=gen)
            ref = old(x, t, e)
            noise, maps = scripted(x, t, e)
            diff = (noise - ref).abs().max().item()
            total = (maps.sum(1) - 1).abs().max().item()
            print("B %d latents %dx%d: noise max|diff| %.3g, maps %s, |sum over tokens - 1| %.2g"
                  % (B, h, w, diff, list(maps.shape), total))
            if diff != 0 or tuple(maps.shape) != (B, L, h, w) or total > 1e-5:
                raise SystemExit("the re-exported UNet does not match the bundle's")
    x = torch.randn(1, 4, 8, 8, generator=gen)
    e = torch.randn(1, L, D, generator=gen, requires_grad=True)
    scripted(x, torch.tensor([500]), e)[0].pow(2).mean().backward()
    grads = sum(1 for p in scripted.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    print("gradients reach %d of %d parameter tensors and the text states" % (grads, len(list(scripted.parameters()))))
    if grads == 0 or e.grad is None:
        raise SystemExit("no gradients through the re-exported UNet")
    for p in scripted.parameters():
        p.grad = None

    if out != src:
        shutil.copytree(src, out, dirs_exist_ok=True)
    torch.jit.save(scripted, os.path.join(out, "unet.pt"))
    mj["formatVersion"] = 2
    mj["crossAttentionMaps"] = {"downsample": 1, "layers": list(models.UNet.MAP_LAYERS)}
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(mj, f, indent=2)
        f.write("\n")
    print("wrote %s (formatVersion 2, crossAttentionMaps %s)" % (out, mj["crossAttentionMaps"]))


if __name__ == "__main__":
    main()
