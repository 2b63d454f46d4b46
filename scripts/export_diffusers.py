"""Export a LOCAL diffusers Stable Diffusion 1.x / 2.x pipeline folder to a torchedit bundle.

usage: python3 scripts/export_diffusers.py PIPELINE_DIR OUT_DIR [--dtype float32|float16]
           [--name NAME] [--device cpu|cuda] [--no-verify] [--grad-check] [--keep-sdpa]
           [--trace-latent 16] [--threads 1] [--no-attention-maps]

PIPELINE_DIR is a diffusers folder: model_index.json, unet/, vae/, text_encoder/, tokenizer/,
scheduler/ (e.g. a local copy of runwayml/stable-diffusion-v1-5 or
stabilityai/stable-diffusion-2-1-base). Nothing is downloaded (local_files_only=True).

What it does:
  * StableDiffusionPipeline.from_pretrained(PIPELINE_DIR, torch_dtype=..., safety_checker=None,
    requires_safety_checker=False, local_files_only=True)
  * wraps the components to the bundle signatures (docs/bundle-format.md):
      text_encoder(ids)                  -> text_encoder(ids, return_dict=False)[0]  (last hidden state,
                                            as diffusers' _encode_prompt with clip_skip=None; an
                                            attention mask is passed only if the text encoder's
                                            config says use_attention_mask, as diffusers does)
      unet(sample, t, ehs)               -> (unet(sample, t, ehs, return_dict=False)[0], maps): format
                                            version 2; the maps [B, L, h/4, w/4] are the cross-attention
                                            probabilities of every attn2 at 1/4 of the latent size in the
                                            down and up blocks (LEDITS++'s), averaged over heads and
                                            layers, recorded by RecordingAttnProcessor in the same trace.
                                            --no-attention-maps: the noise alone (format version 1)
      vae_encoder(image)                 -> cat(latent_dist.mean, latent_dist.logvar) of vae.encode(image)
                                            (logvar as diffusers keeps it, clamped to [-30, 20])
      vae_decoder(z)                     -> vae.decode(z, return_dict=False)[0]   (z unscaled)
  * switches UNet and VAE attention to the classic AttnProcessor (baddbmm/softmax/bmm) unless
    --keep-sdpa: a torch>=2 trace with scaled_dot_product_attention cannot be loaded by an older
    libtorch (the runtime reports exportedWith), and VAE slicing/tiling are disabled (they add
    size-dependent Python branches that a trace would freeze);
  * writes model.json from the pipeline's own configs (unet.config.sample_size / in_channels,
    vae.config.scaling_factor, 2**(len(vae.config.block_out_channels)-1), scheduler.config.*,
    tokenizer ids and model_max_length, text_encoder.config.hidden_size, prediction_type), copies
    tokenizer/vocab.json + merges.txt, traces, saves, reloads and verifies via bundle_writer.

float16: torch has no fp16 conv/linear/norm kernels on CPU (1.13 at least), and diffusers'
graphs contain hard-coded float32 casts (timestep embedding), so an fp16 bundle must be traced
on CUDA: --dtype float16 --device cuda. Such a trace may also bake the CUDA device into the
graph; the resulting bundle is for CUDA runtimes. On CPU, --dtype float16 is attempted via
bundle_writer's fp32-trace-then-convert path, which refuses graphs with float32 casts (it will
for diffusers) with a message listing them.

VERIFICATION STATUS (read this):
  * NOT run: diffusers and transformers are not installable in the environment this was written
    in (no PyPI), and no SD checkpoint was available, so this script has never been executed
    end to end. It was written against diffusers' documented API (StableDiffusionPipeline.
    from_pretrained, UNet2DConditionModel.forward(sample, timestep, encoder_hidden_states,
    return_dict), AutoencoderKL.encode(...).latent_dist with .mean/.logvar, AutoencoderKL.decode
    (z, return_dict=False), set_attn_processor(AttnProcessor()), the component .config fields
    named above) and transformers' CLIPTextModel(input_ids, attention_mask, return_dict).
  * Verified: the bundle_writer path it hands off to (tracing, save, torch.jit.load reload,
    eager-vs-reloaded comparison at several batch sizes and latent sizes, model.json, tokenizer
    copy) is exercised by scripts/make_test_bundle.py on torch 1.13 CPU; the model.json field
    mapping was checked by reading against the SD1.5 / SD2.1-base config files' field names.
  * Dry run: the script's own wiring (argument handling, folder checks, the four wrappers,
    build_config, the attention-mask path, the clear error when diffusers is missing) was run
    end to end against a throw-away FAKE `diffusers` module (not committed) whose
    StableDiffusionPipeline returned make_test_bundle's tiny modules behind diffusers-shaped
    interfaces (.config namespaces, return_dict=False tuples, encode().latent_dist.mean/.logvar).
    That proves the glue, not compatibility with any real diffusers/transformers version.
  * Cross-attention maps (format version 2, the default): RecordingAttnProcessor was checked
    against plain multi-head attention on a stand-in object with diffusers' Attention methods
    (to_q/to_k/to_v, head_to_batch_dim, get_attention_scores, batch_to_head_dim, to_out): output
    and head-averaged maps identical. map_layers() and the processor swap (set_attn_processor
    with a dict over unet.attn_processors) follow diffusers' documented API and have not run
    against a real UNet2DConditionModel here.
  * Expected on first real use: possibly TracerWarnings from diffusers/transformers (harmless if
    the reload verification passes - it tests batch 1..3 and latent sizes 8, 16, 16x8 and
    sampleSize), and a long run: one SD UNet trace plus ~8 UNet calls and a few VAE calls on
    CPU take minutes and ~8 GB RAM in fp32.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundle_writer  # noqa: E402


def _import_diffusers():
    try:
        import diffusers  # noqa: F401
        from diffusers import StableDiffusionPipeline
    except Exception as e:  # ImportError, or a broken install raising something else
        sys.exit("export_diffusers.py needs the 'diffusers' and 'transformers' packages "
                 "(pip install diffusers transformers), which could not be imported: %s: %s"
                 % (type(e).__name__, e))
    return diffusers, StableDiffusionPipeline


# LEDITS++'s attention resolution: 1/4 of the latent side (16x16 for SD at 512 px).
MAP_DOWNSAMPLE = 4


class TextEncoderWrapper(torch.nn.Module):
    """forward(input_ids int64 [B, L]) -> last hidden state [B, L, D]."""

    def __init__(self, text_encoder, eos_token_id):
        super().__init__()
        self.text_encoder = text_encoder
        self.use_attention_mask = bool(getattr(text_encoder.config, "use_attention_mask", False))
        self.eos_token_id = int(eos_token_id)

    def forward(self, input_ids):
        if self.use_attention_mask:
            # diffusers passes the tokenizer's mask: 1 up to and including the first EOS.
            L = input_ids.shape[1]
            first_eos = (input_ids == self.eos_token_id).long().argmax(dim=1)
            pos = torch.arange(L, device=input_ids.device)[None, :]
            mask = (pos <= first_eos[:, None]).long()
            return self.text_encoder(input_ids, attention_mask=mask, return_dict=False)[0]
        return self.text_encoder(input_ids, return_dict=False)[0]


class UNetWrapper(torch.nn.Module):
    """forward(sample [B, C, h, w], timestep int64 [B], encoder_hidden_states [B, L, D]) -> [B, C, h, w]."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class CrossAttentionRecorder:
    """The head-averaged cross-attention probabilities [B, N, L] of the recorded layers, in call order."""

    def __init__(self):
        self.maps = []


class RecordingAttnProcessor:
    """diffusers' classic attention computation (AttnProcessor: to_q/to_k/to_v, head_to_batch_dim,
    get_attention_scores = baddbmm + softmax, bmm, to_out), which also hands the attention
    probabilities, averaged over heads, to `recorder`. Set on the cross-attention layers whose maps
    the bundle returns; they are traced into unet.pt with the rest, so the maps cost no second
    UNet call and no second copy of the weights (docs/bundle-format.md "Cross-attention maps")."""

    def __init__(self, recorder):
        self.recorder = recorder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual = hidden_states
        if getattr(attn, "spatial_norm", None) is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (hidden_states.shape if encoder_hidden_states is None
                                          else encoder_hidden_states.shape)
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if getattr(attn, "group_norm", None) is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        probs = attn.get_attention_scores(query, key, attention_mask)  # [B*heads, N, L]
        self.recorder.maps.append(probs.view(batch_size, attn.heads, probs.shape[1], probs.shape[2]).mean(1))
        hidden_states = torch.bmm(probs, value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if getattr(attn, "residual_connection", False):
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def map_layers(unet, downsample=MAP_DOWNSAMPLE):
    """The cross-attention processors LEDITS++ averages: every attn2 of the down and up blocks at
    1/downsample of the latent size (SD 1.x/2.x at 64x64 latents: down_blocks.2 and up_blocks.1,
    the 16x16 layers of diffusers' aggregate_attention(res=16, from_where=["up", "down"]))."""
    n = len(unet.down_blocks)
    names = []
    for key in unet.attn_processors:
        parts = key.split(".")
        if not key.endswith("attn2.processor") or parts[0] not in ("down_blocks", "up_blocks"):
            continue
        i = int(parts[1])
        factor = 2 ** min(i, n - 1) if parts[0] == "down_blocks" else 2 ** (n - 1 - i)
        if factor == downsample:
            names.append(key)
    return names


class UNetWithMapsWrapper(torch.nn.Module):
    """forward(sample, timestep, ehs) -> (noise [B, C, h, w], maps [B, L, h/d, w/d]): format version 2.
    The maps are the recorded layers' head-averaged probabilities, averaged over the layers."""

    def __init__(self, unet, recorder, downsample=MAP_DOWNSAMPLE):
        super().__init__()
        self.unet = unet
        self.recorder = recorder
        self.downsample = downsample

    def forward(self, sample, timestep, encoder_hidden_states):
        self.recorder.maps.clear()
        noise = self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]
        maps = torch.stack(self.recorder.maps).mean(0)  # [B, N, L]
        self.recorder.maps.clear()
        b, _, h, w = sample.shape
        return noise, maps.transpose(1, 2).reshape(b, maps.shape[2], h // self.downsample, w // self.downsample)


class VaeEncoderWrapper(torch.nn.Module):
    """forward(image [B, 3, H, W] in [-1, 1]) -> posterior mean ‖ logvar [B, 2C, H/f, W/f] (unscaled)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image):
        dist = self.vae.encode(image).latent_dist
        return torch.cat([dist.mean, dist.logvar], dim=1)


class VaeDecoderWrapper(torch.nn.Module):
    """forward(latents [B, C, h, w], unscaled) -> image [B, 3, H, W] in about [-1, 1]."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


def _cfg(obj, key, default=None):
    cfg = getattr(obj, "config", obj)
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def build_config(pipe, name, folder):
    unet, vae, te, tok, sch = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler
    C = int(_cfg(unet, "in_channels"))
    if int(_cfg(unet, "out_channels", C)) != C:
        raise SystemExit("unet.config.out_channels (%s) != in_channels (%s): not an SD text-to-image UNet"
                         % (_cfg(unet, "out_channels"), C))
    if int(_cfg(vae, "latent_channels", C)) != C:
        raise SystemExit("vae.config.latent_channels (%s) != unet.config.in_channels (%s)" % (_cfg(vae, "latent_channels"), C))
    hidden = int(_cfg(te, "hidden_size"))
    cross = _cfg(unet, "cross_attention_dim")
    if cross is not None and not isinstance(cross, (list, tuple)) and int(cross) != hidden:
        raise SystemExit("unet.config.cross_attention_dim %s != text_encoder.config.hidden_size %s" % (cross, hidden))
    max_len = int(tok.model_max_length)
    max_pos = int(_cfg(te, "max_position_embeddings", max_len))
    if max_len > max_pos:  # some tokenizers carry a huge sentinel
        max_len = max_pos
    sample_size = _cfg(unet, "sample_size")
    if isinstance(sample_size, (list, tuple)):
        if sample_size[0] != sample_size[1]:
            raise SystemExit("non-square unet.config.sample_size %s is not supported" % (sample_size,))
        sample_size = sample_size[0]
    pad = tok.pad_token_id
    if pad is None:
        raise SystemExit("tokenizer has no pad_token_id")
    return {
        "name": name or os.path.basename(os.path.normpath(folder)),
        "sampleSize": int(sample_size),
        "latentChannels": C,
        "vaeScaleFactor": 2 ** (len(_cfg(vae, "block_out_channels")) - 1),
        "scalingFactor": float(_cfg(vae, "scaling_factor", 0.18215)),  # diffusers' default
        "predictionType": _cfg(sch, "prediction_type", "epsilon") or "epsilon",
        "scheduler": {
            "numTrainTimesteps": int(_cfg(sch, "num_train_timesteps", 1000)),
            "betaSchedule": _cfg(sch, "beta_schedule", "scaled_linear"),
            "betaStart": float(_cfg(sch, "beta_start", 0.00085)),
            "betaEnd": float(_cfg(sch, "beta_end", 0.012)),
            "stepsOffset": int(_cfg(sch, "steps_offset", 0) or 0),  # diffusers' default is 0; SD configs say 1
            "setAlphaToOne": bool(_cfg(sch, "set_alpha_to_one", False)),
            "timestepSpacing": _cfg(sch, "timestep_spacing", "leading") or "leading",
        },
        "textEncoder": {
            "maxLength": max_len,
            "hiddenSize": hidden,
            "bosTokenId": int(tok.bos_token_id),
            "eosTokenId": int(tok.eos_token_id),
            "padTokenId": int(pad),
        },
        "source": {"format": "diffusers", "folder": os.path.basename(os.path.normpath(folder)),
                   "schedulerClass": type(sch).__name__, "unetClass": type(unet).__name__},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pipeline_dir")
    p.add_argument("out_dir")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda for float16 if available, else cpu)")
    p.add_argument("--name", default=None)
    p.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare step (not recommended)")
    p.add_argument("--grad-check", action="store_true", help="also back-propagate once through the reloaded UNet")
    p.add_argument("--keep-sdpa", action="store_true", help="keep diffusers' default attention processors")
    p.add_argument("--trace-latent", type=int, default=16, help="latent side used for tracing (multiple of 8)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-attention-maps", action="store_true",
                   help="write a format-1 bundle whose UNet returns the noise only (no LEDITS++ implicit masks)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    folder = args.pipeline_dir
    for sub in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if not os.path.exists(os.path.join(folder, sub)):
            sys.exit("%s is not a diffusers pipeline folder: %s is missing" % (folder, sub))
    tok_dir = os.path.join(folder, "tokenizer")
    for fn in ("vocab.json", "merges.txt"):
        if not os.path.isfile(os.path.join(tok_dir, fn)):
            sys.exit("%s has no %s (a CLIP BPE tokenizer folder is required)" % (tok_dir, fn))

    diffusers, StableDiffusionPipeline = _import_diffusers()
    device = args.device or ("cuda" if args.dtype == "float16" and torch.cuda.is_available() else "cpu")
    if args.dtype == "float16" and device == "cpu":
        print("warning: float16 on CPU: tracing in float32 and converting; this is refused if the graph "
              "has hard-coded float32 casts (diffusers' UNet does). Use --device cuda.", file=sys.stderr)
    load_dtype = torch.float16 if (args.dtype == "float16" and device != "cpu") else torch.float32

    t0 = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(
        folder, torch_dtype=load_dtype, safety_checker=None, requires_safety_checker=False,
        local_files_only=True)
    print("loaded %s with diffusers %s in %.1fs" % (folder, diffusers.__version__, time.time() - t0))

    unet, vae, te, tok = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    if not args.keep_sdpa:
        try:
            from diffusers.models.attention_processor import AttnProcessor
            for m in (unet, vae):
                if hasattr(m, "set_attn_processor"):
                    m.set_attn_processor(AttnProcessor())
        except ImportError:
            print("note: diffusers.models.attention_processor.AttnProcessor not found (old diffusers); "
                  "keeping the default attention", file=sys.stderr)
    for meth in ("disable_slicing", "disable_tiling"):
        if hasattr(vae, meth):
            getattr(vae, meth)()
    if getattr(te.config, "_attn_implementation", None) not in (None, "eager") and not args.keep_sdpa:
        # transformers >= 4.36 may select SDPA; the classic path traces to plain matmul/softmax.
        try:
            te.config._attn_implementation = "eager"
        except Exception:
            pass

    unet_module = UNetWrapper(unet)
    if not args.no_attention_maps:
        if args.keep_sdpa:
            sys.exit("--keep-sdpa cannot record attention maps (SDPA never forms the probabilities); add --no-attention-maps")
        recorder = CrossAttentionRecorder()
        layers = map_layers(unet)
        if not layers:
            sys.exit("no cross-attention layer at 1/%d of the latent size in this UNet; use --no-attention-maps" % MAP_DOWNSAMPLE)
        unet.set_attn_processor({k: (RecordingAttnProcessor(recorder) if k in layers else v)
                                 for k, v in unet.attn_processors.items()})
        unet_module = UNetWithMapsWrapper(unet, recorder)
        print("cross-attention maps from %d layers: %s" % (len(layers), ", ".join(k[: -len(".processor")] for k in layers)))

    config = build_config(pipe, args.name, folder)
    if not args.no_attention_maps:
        config["crossAttentionMaps"] = {"downsample": MAP_DOWNSAMPLE, "layers": [k[: -len(".processor")] for k in layers]}
    config["source"]["diffusersVersion"] = diffusers.__version__
    try:
        import transformers
        config["source"]["transformersVersion"] = transformers.__version__
    except Exception:
        pass
    print("model.json fields:", json.dumps({k: v for k, v in config.items() if k != "source"}))

    s = config["sampleSize"]
    verify = [(1, 8, 8), (2, 16, 16), (3, 16, 8)]
    if s not in (8, 16):
        verify.append((1, s, s))  # UNet only at native size (bundle_writer uses the first two for the VAE)
    bundle_writer.write_bundle(
        args.out_dir,
        TextEncoderWrapper(te, tok.eos_token_id), unet_module, VaeEncoderWrapper(vae), VaeDecoderWrapper(vae),
        config, tok_dir, dtype=args.dtype, name=args.name, verify=not args.no_verify,
        trace_latent=args.trace_latent, verify_latents=verify, check_grad=args.grad_check, device=device)
    print("done in %.1fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
