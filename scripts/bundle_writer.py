"""Write a torchedit model bundle (docs/bundle-format.md is the contract) from eager modules.

Public API
----------
write_bundle(out_dir, text_encoder, unet, vae_encoder, vae_decoder, config, tokenizer_dir,
             dtype="float32", *, name=None, check_config=True, verify=True, tol=None,
             trace_batch=2, trace_latent=16, verify_latents=((1, 8, 8), (2, 16, 16), (3, 16, 8)),
             check_grad=True, script=(), log=print) -> dict      # returns the model.json written

  The four modules are eager torch.nn.Modules that ALREADY have the bundle signatures:
    text_encoder(input_ids int64 [B, L])                          -> float [B, L, D]
    unet(sample [B, C, h, w], timestep int64 [B], ehs [B, L, D])  -> [B, C, h, w], or with
                                                                     config["crossAttentionMaps"]
                                                                     (format version 2) the tuple
                                                                     ([B, C, h, w], maps [B, L, h/d, w/d])
    vae_encoder(image [B, 3, H, W] in [-1, 1])                    -> [B, 2C, h, w] (mean ‖ logvar)
    vae_decoder(latents [B, C, h, w], unscaled)                   -> [B, 3, H, W]
  They are put in eval() mode. Each one is torch.jit.trace'd (or torch.jit.script'ed if its name,
  "text_encoder" / "unet" / "vae_encoder" / "vae_decoder", is in `script`), saved, re-loaded with
  torch.jit.load, and the reloaded module is compared against the eager one on random inputs at
  several batch sizes and latent sizes (h, w multiples of 8, including h != w), printing the max
  abs diff and raising BundleError above `tol` (relative to max(1, max|ref|)). The modules'
  parameters stay parameters (no freezing), so the runtime can fine-tune the UNet (Imagic); with
  check_grad the reloaded UNet is also back-propagated once to check that gradients reach its
  parameters and encoder_hidden_states.

  `config` holds the model.json fields: required sampleSize, latentChannels, scalingFactor,
  predictionType, scheduler{...}, textEncoder{maxLength, hiddenSize, bosTokenId, eosTokenId,
  padTokenId}; optional name, vaeScaleFactor (default 8) and any extra fields (kept). format,
  formatVersion, dtype and exportedWith are filled in here. `tokenizer_dir` must contain
  vocab.json and merges.txt; they are copied to <out_dir>/tokenizer/.
  check_config=False skips the checks that the module outputs agree with config (used only to
  write deliberately broken bundles for loader-rejection tests).

  dtype="float16": torch 1.13 has no fp16 CPU kernels for conv / linear / norm / softmax, so
  without CUDA the modules are traced in float32 and the traced module's parameters are
  converted to fp16. That is only correct when the traced graph has no hard-coded float32/64
  casts or float tensor constants; the graph is scanned for those and BundleError is raised if
  any are found (trace on a CUDA machine then, with device="cuda"; note a CUDA trace may bake
  the device into the graph). On CPU the fp16 files are verified by loading them, casting
  back to float32 and comparing with the eager fp32 module at fp16-level tolerance; the fp16
  kernels themselves are not exercised.

Also: trace_module(module, example_inputs, script=False), verify_module(...), and
load_model_json(out_dir). Command line: `python3 bundle_writer.py --check BUNDLE_DIR` re-loads
a bundle and runs each module once on random inputs of the sizes in model.json.
"""
import io
import json
import os
import re
import shutil
import sys
import time

import torch

__all__ = ["write_bundle", "trace_module", "verify_module", "check_dtype_agnostic", "load_model_json",
           "BundleError", "REQUIRED_FIELDS"]

FORMAT = "torchedit-bundle"
FORMAT_VERSION = 1
FORMAT_VERSION_MAPS = 2  # the UNet returns (noise, cross-attention maps): docs/bundle-format.md
MODULE_FILES = {"text_encoder": "text_encoder.pt", "unet": "unet.pt",
                "vae_encoder": "vae_encoder.pt", "vae_decoder": "vae_decoder.pt"}
REQUIRED_FIELDS = ["sampleSize", "latentChannels", "scalingFactor", "predictionType", "scheduler", "textEncoder"]
SCHEDULER_FIELDS = ["numTrainTimesteps", "betaSchedule", "betaStart", "betaEnd", "stepsOffset",
                    "setAlphaToOne", "timestepSpacing"]
TEXT_FIELDS = ["maxLength", "hiddenSize", "bosTokenId", "eosTokenId", "padTokenId"]
VOCAB_SIZE = 49408  # CLIP BPE; random ids for verification are drawn below this
# The CLIP BPE vocabulary (vocab.json + merges.txt) the project keeps once, in the shipped default
# model; the test and bench bundle makers, the training scripts and the tokenizer tests read it.
CLIP_TOKENIZER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "shapes-64", "tokenizer")


class BundleError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- config

def _build_model_json(config, dtype, name):
    cfg = dict(config)
    missing = [k for k in REQUIRED_FIELDS if k not in cfg]
    if missing:
        raise BundleError("config is missing model.json field(s): %s" % ", ".join(missing))
    sm = [k for k in SCHEDULER_FIELDS if k not in cfg["scheduler"]]
    if sm:
        raise BundleError("config.scheduler is missing field(s): %s" % ", ".join(sm))
    tm = [k for k in TEXT_FIELDS if k not in cfg["textEncoder"]]
    if tm:
        raise BundleError("config.textEncoder is missing field(s): %s" % ", ".join(tm))
    if cfg["predictionType"] not in ("epsilon", "v_prediction"):
        raise BundleError("config.predictionType must be epsilon or v_prediction, got %r" % cfg["predictionType"])
    maps = cfg.get("crossAttentionMaps")
    if maps is not None:
        if not isinstance(maps, dict) or maps.get("downsample") not in (1, 2, 4, 8) or \
                not isinstance(maps.get("layers"), list) or not maps["layers"]:
            raise BundleError("config.crossAttentionMaps must be {downsample: 1|2|4|8, layers: [names...]}, got %r" % (maps,))
    # A UNet that also returns cross-attention maps has another signature: format version 2.
    out = {"format": FORMAT, "formatVersion": FORMAT_VERSION_MAPS if maps is not None else FORMAT_VERSION,
           "name": name or cfg.get("name") or "model"}
    out["sampleSize"] = int(cfg["sampleSize"])
    out["latentChannels"] = int(cfg["latentChannels"])
    out["vaeScaleFactor"] = int(cfg.get("vaeScaleFactor", 8))
    out["scalingFactor"] = float(cfg["scalingFactor"])
    out["predictionType"] = cfg["predictionType"]
    s = cfg["scheduler"]
    out["scheduler"] = dict(s)
    out["scheduler"].update({
        "numTrainTimesteps": int(s["numTrainTimesteps"]), "betaSchedule": str(s["betaSchedule"]),
        "betaStart": float(s["betaStart"]), "betaEnd": float(s["betaEnd"]),
        "stepsOffset": int(s["stepsOffset"]), "setAlphaToOne": bool(s["setAlphaToOne"]),
        "timestepSpacing": str(s["timestepSpacing"])})
    t = cfg["textEncoder"]
    out["textEncoder"] = dict(t)
    out["textEncoder"].update({k: int(t[k]) for k in TEXT_FIELDS})
    for k, v in cfg.items():  # extra fields are kept
        if k not in out and k not in ("format", "formatVersion", "dtype", "exportedWith"):
            out[k] = v
    out["dtype"] = dtype
    out["exportedWith"] = {"torch": torch.__version__}
    return out


def load_model_json(bundle_dir):
    with open(os.path.join(bundle_dir, "model.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- inputs

def _inputs(kind, mj, B, h, w, dtype, device, gen):
    C = mj["latentChannels"]
    f = mj["vaeScaleFactor"]
    te = mj["textEncoder"]
    if kind == "text_encoder":
        ids = torch.randint(0, VOCAB_SIZE, (B, te["maxLength"]), generator=gen, dtype=torch.int64)
        ids[:, 0] = te["bosTokenId"]
        return (ids.to(device),)
    if kind == "unet":
        x = torch.randn(B, C, h, w, generator=gen)
        t = torch.randint(0, mj["scheduler"]["numTrainTimesteps"], (B,), generator=gen, dtype=torch.int64)
        e = torch.randn(B, te["maxLength"], te["hiddenSize"], generator=gen)
        return (x.to(device, dtype), t.to(device), e.to(device, dtype))
    if kind == "vae_encoder":
        return ((torch.rand(B, 3, h * f, w * f, generator=gen) * 2 - 1).to(device, dtype),)
    if kind == "vae_decoder":
        return ((torch.randn(B, C, h, w, generator=gen) / mj["scalingFactor"]).to(device, dtype),)
    raise ValueError(kind)


def _expected_shape(kind, mj, inputs):
    C = mj["latentChannels"]
    f = mj["vaeScaleFactor"]
    if kind == "text_encoder":
        B, L = inputs[0].shape
        return (B, L, mj["textEncoder"]["hiddenSize"])
    if kind == "unet":
        return tuple(inputs[0].shape)
    if kind == "vae_encoder":
        B, _, H, W = inputs[0].shape
        return (B, 2 * C, H // f, W // f)
    B, _, h, w = inputs[0].shape
    return (B, 3, h * f, w * f)


# ----------------------------------------------------------------------------- trace / check

def trace_module(module, example_inputs, script=False):
    """torch.jit.trace (or script) an eval-mode module without freezing its parameters."""
    module.eval()
    if script:
        return torch.jit.script(module)
    with torch.no_grad():
        return torch.jit.trace(module, tuple(example_inputs), check_trace=False)


def _arg_names(schema):
    m = re.match(r"^[^(]*\((.*)\)\s*->", schema)
    if not m:
        return []
    names = []
    for a in m.group(1).split(", "):
        a = a.strip()
        if a == "*" or not a:
            continue
        a = a.split("=")[0].strip()
        names.append(a.split(" ")[-1])
    return names


def check_dtype_agnostic(script_module):
    """Return a list of human-readable problems that would stop a float32-traced graph from
    running in float16 after .half(): hard-coded float32/float64 dtype arguments and
    non-scalar float tensor constants."""
    problems = []
    try:
        graph = script_module.inlined_graph
    except Exception:
        graph = script_module.graph
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::Constant":
            out = node.output()
            if out.type().kind() == "TensorType":
                try:
                    val = node.t("value")
                except Exception:
                    continue
                if val.is_floating_point() and val.dim() > 0 and val.dtype != torch.float16:
                    problems.append("float tensor constant %s %s" % (val.dtype, list(val.shape)))
            continue
        try:
            schema = node.schema()
        except Exception:
            continue
        if schema == "(no schema)":
            continue
        names = _arg_names(schema)
        inputs = list(node.inputs())
        for i, n in enumerate(names):
            if n != "dtype" or i >= len(inputs):
                continue
            src = inputs[i].node()
            if src.kind() == "prim::Constant" and src.hasAttribute("value"):
                try:
                    v = src.i("value")
                except Exception:
                    continue
                if v in (6, 7):  # c10::ScalarType Float, Double
                    problems.append("%s with dtype=%s (%s)" % (kind, "float32" if v == 6 else "float64",
                                                              str(node).strip().split("#")[-1].strip()[:120]))
    return problems


def _maxdiff(a, b):
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


def verify_module(kind, eager, loaded, mj, sizes, tol, dtype, device, log, check_config=True, seed=0):
    """Compare `loaded` (reloaded TorchScript) against `eager` on random inputs. Returns the
    worst relative diff. Raises BundleError on shape or value mismatch."""
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    run_dtype = dtype if dtype == torch.float32 or device != "cpu" else torch.float32
    for (B, h, w) in sizes:
        inp = _inputs(kind, mj, B, h, w, run_dtype, device, gen)
        with torch.no_grad():
            ref = eager(*inp)
            got = loaded(*inp)
        maps = mj.get("crossAttentionMaps") if kind == "unet" else None
        if maps is not None:
            # (noise, maps): the maps [B, L, h/d, w/d] are checked here, the noise below.
            if not isinstance(got, tuple) or len(got) != 2:
                raise BundleError("unet.pt: model.json declares crossAttentionMaps, so the UNet must return "
                                  "(noise, maps); it returned %s" % type(got).__name__)
            B, _, h, w = inp[0].shape
            d = maps["downsample"]
            exp_maps = (B, mj["textEncoder"]["maxLength"], h // d, w // d)
            if check_config and tuple(got[1].shape) != exp_maps:
                raise BundleError("unet.pt: cross-attention maps shaped %s for latents %s, but model.json implies %s"
                                  % (list(got[1].shape), list(inp[0].shape), list(exp_maps)))
            dm = _maxdiff(got[1], ref[1])
            if dm > tol:
                raise BundleError("unet.pt: reloaded maps differ from eager: max|diff| %.3g > tol %.3g" % (dm, tol))
            got, ref = got[0], ref[0]
        if not isinstance(got, torch.Tensor):
            raise BundleError("%s: reloaded module returned %s, expected one Tensor" % (MODULE_FILES[kind], type(got).__name__))
        if tuple(got.shape) != tuple(ref.shape):
            raise BundleError("%s: reloaded output shape %s != eager %s for input %s"
                              % (MODULE_FILES[kind], list(got.shape), list(ref.shape), [list(i.shape) for i in inp]))
        exp = _expected_shape(kind, mj, inp)
        if check_config and tuple(got.shape) != exp:
            raise BundleError("%s: output shape %s for input %s, but model.json implies %s"
                              % (MODULE_FILES[kind], list(got.shape), [list(i.shape) for i in inp], list(exp)))
        if not torch.isfinite(got).all():
            raise BundleError("%s: non-finite output" % MODULE_FILES[kind])
        d = _maxdiff(got, ref)
        scale = max(1.0, ref.abs().max().item())
        rel = d / scale
        worst = max(worst, rel)
        log("  %-16s in %-40s out %-18s max|diff| %.3g (scale %.3g) std %.3g"
            % (MODULE_FILES[kind], "x".join(str(s) for s in inp[0].shape) + ("" if len(inp) == 1 else " (+%d)" % (len(inp) - 1)),
               "x".join(str(s) for s in got.shape), d, scale, got.float().std().item()))
        if rel > tol:
            raise BundleError("%s: reloaded module differs from eager: max|diff| %.3g > tol %.3g x %.3g"
                              % (MODULE_FILES[kind], d, tol, scale))
    return worst


def _check_grad(loaded, mj, dtype, device, log):
    gen = torch.Generator().manual_seed(1)
    x, t, e = _inputs("unet", mj, 1, 8, 8, dtype, device, gen)
    e = e.clone().requires_grad_(True)
    params = [p for p in loaded.parameters()]
    for p in params:
        p.requires_grad_(True)
    out = loaded(x, t, e)
    if isinstance(out, tuple):  # (noise, cross-attention maps)
        out = out[0]
    loss = (out.float() ** 2).mean()
    loss.backward()
    n_grad = sum(1 for p in params if p.grad is not None and p.grad.abs().sum().item() > 0)
    if e.grad is None or e.grad.abs().sum().item() == 0:
        raise BundleError("unet.pt: no gradient reaches encoder_hidden_states")
    if n_grad == 0:
        raise BundleError("unet.pt: no gradient reaches the UNet parameters")
    log("  unet.pt backward ok: %d/%d parameter tensors got nonzero grads, |d loss/d ehs| = %.3g"
        % (n_grad, len(params), e.grad.abs().sum().item()))
    for p in params:
        p.grad = None


# ----------------------------------------------------------------------------- main entry

def write_bundle(out_dir, text_encoder, unet, vae_encoder, vae_decoder, config, tokenizer_dir,
                 dtype="float32", *, name=None, check_config=True, verify=True, tol=None,
                 trace_batch=2, trace_latent=16, verify_latents=((1, 8, 8), (2, 16, 16), (3, 16, 8)),
                 check_grad=True, script=(), device="cpu", log=print):
    """Trace/script, save, reload and verify the four modules; write model.json and tokenizer/.
    Returns the model.json dict. See the module docstring for details."""
    if dtype not in ("float32", "float16"):
        raise BundleError("dtype must be float32 or float16, got %r" % (dtype,))
    tdt = torch.float32 if dtype == "float32" else torch.float16
    mj = _build_model_json(config, dtype, name)
    if tol is None:
        tol = 1e-4 if dtype == "float32" else 2e-2
    for fn in ("vocab.json", "merges.txt"):
        if not os.path.isfile(os.path.join(tokenizer_dir, fn)):
            raise BundleError("tokenizer_dir %s has no %s" % (tokenizer_dir, fn))
    os.makedirs(out_dir, exist_ok=True)
    # fp16 on CPU: trace in fp32, then convert parameters (see docstring).
    half_after = dtype == "float16" and device == "cpu"
    trace_dtype = torch.float32 if half_after else tdt
    modules = {"text_encoder": text_encoder, "unet": unet, "vae_encoder": vae_encoder, "vae_decoder": vae_decoder}
    gen = torch.Generator().manual_seed(1234)
    t_all = time.time()
    for kind, mod in modules.items():
        t0 = time.time()
        mod.eval()
        mod.to(device=device, dtype=trace_dtype)
        ex = _inputs(kind, mj, trace_batch, trace_latent, trace_latent, trace_dtype, device, gen)
        sm = trace_module(mod, ex, script=kind in script)
        if half_after:
            probs = check_dtype_agnostic(sm)
            if probs:
                raise BundleError("%s: the float32 trace is not dtype-agnostic, so it cannot be converted to "
                                  "float16 without CUDA:\n    %s" % (MODULE_FILES[kind], "\n    ".join(sorted(set(probs))[:20])))
            # The trace shares parameter tensors with the eager module: round-trip through a
            # buffer so converting to fp16 leaves the caller's module untouched.
            buf = io.BytesIO()
            torch.jit.save(sm, buf)
            buf.seek(0)
            sm = torch.jit.load(buf, map_location=device).half()
        path = os.path.join(out_dir, MODULE_FILES[kind])
        torch.jit.save(sm, path)
        del sm
        log("%-16s saved (%.1f MB, %s, %.1fs)" % (MODULE_FILES[kind], os.path.getsize(path) / 1e6,
                                                 "scripted" if kind in script else "traced", time.time() - t0))
        if verify:
            loaded = torch.jit.load(path, map_location=device)
            loaded.eval()
            ptypes = {p.dtype for p in loaded.parameters()}
            if ptypes and ptypes != {tdt}:
                raise BundleError("%s: parameters have dtypes %s, expected %s" % (MODULE_FILES[kind], ptypes, tdt))
            if half_after:
                loaded = loaded.float()
                log("  (float16 on CPU: comparing the fp16 weights cast back to fp32; fp16 kernels not run)")
            sizes = [(b, h, w) for (b, h, w) in verify_latents]
            if kind == "text_encoder":
                sizes = [(1, 0, 0), (3, 0, 0)]
            elif kind in ("vae_encoder", "vae_decoder"):
                sizes = sizes[:2]
            verify_module(kind, mod, loaded, mj, sizes, tol, trace_dtype, device, log, check_config=check_config)
            if kind == "unet" and check_grad:
                _check_grad(loaded, mj, trace_dtype, device, log)
            del loaded
    tok_out = os.path.join(out_dir, "tokenizer")
    os.makedirs(tok_out, exist_ok=True)
    for fn in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(tokenizer_dir, fn), os.path.join(tok_out, fn))
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(mj, f, indent=2)
        f.write("\n")
    log("bundle written to %s in %.1fs" % (out_dir, time.time() - t_all))
    return mj


def _check_cli(bundle_dir):
    """Load an existing bundle and run each module once at sampleSize (batch 1)."""
    mj = load_model_json(bundle_dir)
    dt = torch.float32 if mj.get("dtype", "float32") == "float32" else torch.float16
    gen = torch.Generator().manual_seed(0)
    s = mj["sampleSize"]
    for kind, fn in MODULE_FILES.items():
        m = torch.jit.load(os.path.join(bundle_dir, fn))
        if dt == torch.float16:
            m = m.float()
        inp = _inputs(kind, mj, 1, s, s, torch.float32, "cpu", gen)
        t0 = time.time()
        with torch.no_grad():
            out = m(*inp)
        if isinstance(out, tuple):  # a format-2 UNet: (noise, cross-attention maps)
            print("%-16s cross-attention maps %s" % (fn, list(out[1].shape)))
            out = out[0]
        exp = _expected_shape(kind, mj, inp)
        print("%-16s %s -> %s (expected %s) std %.3g  %.2fs" % (fn, [list(i.shape) for i in inp], list(out.shape),
                                                              list(exp), out.float().std().item(), time.time() - t0))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        _check_cli(sys.argv[2])
    else:
        print("usage: python3 bundle_writer.py --check BUNDLE_DIR   (library: see write_bundle)")
        sys.exit(2)
