"""Plain-PyTorch reference for Imagic's training loss gradient (arXiv:2210.09276 §3.1), run
with /usr/bin/python3 over the same TorchScript UNet torchedit loads.

Usage: imagic_reference.py grad|pgrad BUNDLE_DIR IN.safetensors OUT.safetensors [NAME...]
  IN holds x0 [1,C,h,w], embedding [1,L,D], noise [1,C,h,w] and t (int64 scalar);
  grad:  OUT gets loss (scalar) and grad (d loss / d embedding), stage A's;
  pgrad: OUT gets loss and, for each UNet parameter NAME, grad.NAME (d loss / d parameter) with
         only those parameters requiring gradients, stage B's subset fine-tune.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import load_file, save_file  # noqa: E402
from sd_reference import Bundle  # noqa: E402


def grad(bundle, x0, embedding, noise, t):
    e = embedding.clone().requires_grad_(True)
    a = bundle.alpha_bar(t)
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise  # q(x_t | x_0), eq. (4) of 2006.11239
    eps = bundle.eps(xt, t, e)
    loss = torch.nn.functional.mse_loss(eps, noise)
    (g,) = torch.autograd.grad(loss, [e])
    return loss.detach(), g


def parameter_grads(bundle, x0, embedding, noise, t, names):
    params = dict(bundle.unet.named_parameters())
    chosen = [params[n] for n in names]
    for p in params.values():
        p.requires_grad_(False)
    for p in chosen:
        p.requires_grad_(True)
    a = bundle.alpha_bar(t)
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * noise
    loss = torch.nn.functional.mse_loss(bundle.eps(xt, t, embedding), noise)
    grads = torch.autograd.grad(loss, chosen)
    return loss.detach(), dict(zip(names, grads))


def main():
    torch.set_num_threads(1)
    command, bundle_dir, inp, out = sys.argv[1:5]
    assert command in ("grad", "pgrad")
    tensors, _ = load_file(inp)
    bundle = Bundle(bundle_dir)
    args = (tensors["x0"], tensors["embedding"], tensors["noise"], int(tensors["t"].item()))
    if command == "grad":
        loss, g = grad(bundle, *args)
        save_file({"loss": loss.reshape(1), "grad": g.contiguous()}, out)
    else:
        loss, grads = parameter_grads(bundle, *args, sys.argv[5:])
        save_file({"loss": loss.reshape(1), **{"grad." + n: g.contiguous() for n, g in grads.items()}}, out)


if __name__ == "__main__":
    main()
