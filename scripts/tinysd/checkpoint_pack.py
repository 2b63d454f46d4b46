"""Carry a training run of train.py from one machine to the next inside the repository.

Machines here do not outlive a session, so a run longer than a session must travel in git. A
train.py checkpoint (ckpt.pt) is ~100 MB in the UNet phase; this keeps what resuming needs in
about half:

  pack DIR FILE     DIR/ckpt.pt (and DIR/decoder_ft.pt when present) -> FILE
  unpack FILE DIR   FILE -> DIR/ckpt.pt (and DIR/decoder_ft.pt); then `train.py --out DIR --resume`

Kept exactly (float32): the VAE encoder and decoder (the latent space the UNet learns must not
move), the UNet and text-encoder weights, every counter, the log and the config. Kept in
bfloat16: Adam's two moments (their relative precision barely matters to the next steps) and the
EMA as its difference from the weights (small, so bfloat16's 8 bits hold it to ~1e-3 of itself).
Dropped: the VAE's optimiser once the VAE phase is over, and the latent pool (train.py re-encodes
it with the stored encoder in ~10 min and keeps the stored scaling factor). So a resumed run is
not bit-identical to an uninterrupted one, unlike a resume from ckpt.pt on the same machine.

Usage: /usr/bin/python3 scripts/tinysd/checkpoint_pack.py pack /work/train-shapes2 training/shapes2-64.pt
"""
import os
import sys

import torch


def _bf16(tree):
    if isinstance(tree, torch.Tensor):
        return tree.to(torch.bfloat16) if tree.is_floating_point() and tree.dim() > 0 else tree
    if isinstance(tree, dict):
        return {k: _bf16(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_bf16(v) for v in tree]
    return tree


def _f32(tree):
    if isinstance(tree, torch.Tensor):
        return tree.float() if tree.dtype == torch.bfloat16 else tree
    if isinstance(tree, dict):
        return {k: _f32(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_f32(v) for v in tree]
    return tree


def _live(st):
    """The weights the EMA shadows, under the EMA's keys (train.py: UNet keys, then "te." + text encoder keys)."""
    return {**st["unet"], **{"te." + k: v for k, v in st["text_encoder"].items()}}


def pack(run_dir, file):
    st = torch.load(os.path.join(run_dir, "ckpt.pt"))
    out = dict(st)
    if st["phase"] != "vae":
        out.pop("vae_opt", None)
    elif "vae_opt" in st:
        out["vae_opt"] = _bf16(st["vae_opt"])
    if "unet_opt" in st:
        out["unet_opt"] = _bf16(st["unet_opt"])
    if "ema" in st:
        live = _live(st)
        out["ema"] = None
        out["ema_delta_bf16"] = {k: (v - live[k]).to(torch.bfloat16) if v.is_floating_point() else v.clone()
                                 for k, v in st["ema"].items()}
    dec = os.path.join(run_dir, "decoder_ft.pt")
    if os.path.exists(dec):
        d = torch.load(dec)
        out["decoder_ft"] = {k: d[k] for k in d if k != "opt"}
    out["packed"] = True
    tmp = file + ".tmp"
    torch.save(out, tmp)
    os.replace(tmp, file)
    print("packed %s (phase %s, vae step %d, unet step %d) into %s: %.1f MB"
          % (run_dir, st["phase"], st["vae_step"], st["unet_step"], file, os.path.getsize(file) / 1e6))


def unpack(file, run_dir):
    st = torch.load(file)
    if not st.pop("packed", False):
        sys.exit("%s is not a packed checkpoint" % file)
    os.makedirs(run_dir, exist_ok=True)
    if "unet_opt" in st:
        st["unet_opt"] = _f32(st["unet_opt"])
    if "vae_opt" in st:
        st["vae_opt"] = _f32(st["vae_opt"])
    delta = st.pop("ema_delta_bf16", None)
    if delta is not None:
        live = _live(st)
        st["ema"] = {k: (live[k] + v.float()) if v.is_floating_point() else v for k, v in delta.items()}
    dec = st.pop("decoder_ft", None)
    if dec is not None:
        torch.save(dec, os.path.join(run_dir, "decoder_ft.pt"))
    st["log"].append(("unpacked", st["unet_step"], 0, "from %s" % os.path.basename(file)))
    torch.save(st, os.path.join(run_dir, "ckpt.pt"))
    print("unpacked %s into %s (phase %s, vae step %d, unet step %d)%s"
          % (file, run_dir, st["phase"], st["vae_step"], st["unet_step"], "; decoder_ft.pt too" if dec else ""))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("pack", "unpack"):
        (pack if sys.argv[1] == "pack" else unpack)(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
