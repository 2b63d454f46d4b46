"""Train a tiny latent diffusion model on the CPU (VAE first, then UNet + text encoder).

    OMP_NUM_THREADS=1 nohup /usr/bin/python3 scripts/tinysd/train.py --out $OUT \
        [--config shapes-64|shapes2-64] [--resume] [--minutes-vae 14] [--minutes-unet 70] \
        > $OUT/log.txt 2>&1 &
    # later, more UNet training from the finished checkpoint (warm restart):
    ... train.py --out $OUT --resume --extend-unet 70 >> $OUT/log.txt

--config picks the data generator and the model (CONFIGS below): shapes-64 (the default, the
shipped model: data.py, 8x VAE, 8x8 latents, exactly as before) or shapes2-64 (scenes.py: one or
two objects, continuous sizes, grey and tinted backgrounds; 4x VAE, 16x16 latents, 3-level UNet;
see scenes.py and models.UNetN). A checkpoint remembers its config; --resume uses that one.
On SIGTERM / SIGINT the run writes its checkpoint and exits, so a killed session loses nothing
(a SIGKILL loses at most --ckpt-minutes).

Seeded (--seed), single-threaded, prints its losses, writes <out>/ckpt.pt every few minutes
(atomically) and resumes from it with --resume (time budgets count the time already spent).
Phases: vae -> pool (encode a fixed pool of training images to posterior mean/logvar, measure
the latent std -> scaling factor) -> unet -> done. Data come from the config's generator's training
indices only (data.py / scenes.py: indices below 1e9).
Export with scripts/tinysd/export.py, which works from any checkpoint that has reached the unet phase.
"""
import argparse
import importlib
import math
import os
import signal
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from clip_bpe import ClipBPE  # noqa: E402
from models import VAEEncoder, VAEDecoder, TextEncoder, UNet, UNetN, nparams  # noqa: E402

# The repository's own CLIP tokenizer files (the shipped bundle's copy): nothing outside the repo.
TOKENIZER_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                                              "shapes-64", "tokenizer"))
MAX_LEN = 32
CONFIG = dict(vae_ch=(16, 32, 64, 128), z=4, unet_ch=(96, 128), ctx_dim=128, heads=4, text_layers=2,
              text_heads=4, max_len=MAX_LEN, latent_size=8)
CONFIGS = {
    # the shipped model, unchanged (checkpoints without a "data" key are this one)
    "shapes-64": CONFIG,
    # its successor; widths chosen by measured one-thread step times (see the report in
    # scripts/tinysd/SHAPES2.md): UNet 5.0M parameters, ~3 s per batch-64 step
    "shapes2-64": dict(name="shapes2-64", data="scenes", vae_ch=(32, 64, 128), z=4, vae_scale=4, image_size=64,
                       unet="UNetN", unet_ch=(48, 96, 128), unet_attn=("cross", "full", "full"), head_dim=32,
                       ctx_dim=128, text_layers=3, text_heads=4, max_len=MAX_LEN, latent_size=16,
                       pool=30000, lr_schedule="const-cos", unet_lr=5e-4),
}
POOL_START = 100_000_000  # pool images use training indices [POOL_START, POOL_START + pool)
DECODER_FT_START = 500_000_000  # training indices the decoder fine-tune draws from
VAL_START = 2_000_000  # held-out offset (TEST_START + VAL_START ...) of train.py's own validation


def data_module(cfg):
    """The data generator a config trains on (data.py for shapes-64, scenes.py for shapes2-64)."""
    return importlib.import_module(cfg.get("data", "data"))


def sd_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def known_token_ids(tok, dm=data):
    rng = np.random.default_rng(12345)
    ids = {tok.bos_id, tok.eos_id}
    for i in range(20000):
        ids.update(tok.encode(dm.caption(dm.attributes(i), rng)))
    words = getattr(dm, "VOCAB_WORDS", None)
    if words is None:  # data.py (shapes-64): exactly the list it was trained with
        words = list(dm.COLORS) + dm.SHAPES + list(dm.BACKGROUNDS) + list(dm.SIZES) + ["left", "right", "middle", "center"]
    for w in words:
        ids.update(tok.encode(w))
    return sorted(ids)


def build_models(cfg, known_ids):
    enc = VAEEncoder(cfg["vae_ch"], cfg["z"])
    dec = VAEDecoder(cfg["vae_ch"], cfg["z"])
    te = TextEncoder(known_ids, d=cfg["ctx_dim"], layers=cfg["text_layers"], heads=cfg["text_heads"], max_len=cfg["max_len"])
    if cfg.get("unet", "UNet") == "UNetN":
        un = UNetN(cfg["z"], tuple(cfg["unet_ch"]), cfg["ctx_dim"], cfg["head_dim"], cfg["latent_size"],
                   attn=tuple(cfg["unet_attn"]))
    else:
        un = UNet(cfg["z"], tuple(cfg["unet_ch"]), cfg["ctx_dim"], cfg["heads"], cfg["latent_size"])
    return enc, dec, te, un


def lr_const_cos(frac, step, base, warm, decay_from=0.7):
    """Warm-up, constant until `decay_from` of the budget, then cosine to 10%: extending the
    budget while still in the constant part (the usual case across sessions) changes nothing."""
    w = min(1.0, (step + 1) / warm)
    if frac <= decay_from:
        return base * w
    f = min(1.0, (frac - decay_from) / (1 - decay_from))
    return base * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f)))


STOP = {"signal": None}


def _on_signal(signum, frame):
    STOP["signal"] = signum  # checked once per step: checkpoint, then exit


def lr_at(frac, step, base, warm):
    w = min(1.0, (step + 1) / warm)
    return base * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def save(state, path):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", choices=sorted(CONFIGS), default=None,
                    help="data generator + model (default shapes-64; a resumed run keeps its own)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes-vae", type=float, default=None, help="VAE budget (default 14; resume: the stored one)")
    ap.add_argument("--minutes-unet", type=float, default=None,
                    help="UNet budget in minutes of UNet time, counting the time already spent (default 70; "
                         "resume: the stored one). shapes2-64's learning rate is constant until 70%% of it, so "
                         "raising it on a later --resume is safe until then")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool", type=int, default=None, help="latent pool size (default: the config's, 30000)")
    ap.add_argument("--log-every", type=int, default=50, help="print the mean loss every so many steps")
    ap.add_argument("--stop-at-step", type=int, default=0,
                    help="testing: checkpoint and exit when the UNet step counter reaches this")
    ap.add_argument("--val-minutes", type=float, default=15,
                    help="shapes2-64: every so many minutes, the EMA model's loss on fixed held-out latents")
    ap.add_argument("--vae-batch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ckpt-minutes", type=float, default=3)
    ap.add_argument("--decoder-only", type=float, default=0, metavar="MINUTES",
                    help="separate job: fine-tune only the VAE decoder (encoder frozen, so the latent space the "
                         "UNet learns is unchanged) for MINUTES, reading <out>/ckpt.pt and writing "
                         "<out>/decoder_ft.pt (resumable); export.py --decoder uses it")
    ap.add_argument("--extend-unet", type=float, default=0, metavar="MINUTES",
                    help="after a finished run: train the UNet MINUTES more from the checkpoint (weights, "
                         "optimiser and EMA kept) with a warm restart of the cosine learning rate "
                         "(peak --extend-lr); resumable with --resume like the first run")
    ap.add_argument("--extend-lr", type=float, default=2.5e-4)
    args = ap.parse_args()
    if args.decoder_only:
        return finetune_decoder(args)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    tok = ClipBPE(TOKENIZER_DIR)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    if args.resume and os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        cfg, known = st["config"], st["known_ids"]
        if args.config and CONFIGS[args.config] != cfg and args.config != cfg.get("name", "shapes-64"):
            raise SystemExit(f"{ckpt_path} was trained with config {cfg.get('name', 'shapes-64')}, not {args.config}")
        enc, dec, te, un = build_models(cfg, known)
        for m, k in ((enc, "vae_encoder"), (dec, "vae_decoder"), (te, "text_encoder"), (un, "unet")):
            m.load_state_dict(st[k])
        print(f"resumed phase={st['phase']} vae_step={st['vae_step']} unet_step={st['unet_step']}", flush=True)
        if args.extend_unet and st["phase"] == "done" and "extend" not in st:
            # warm restart (SGDR, Loshchilov & Hutter 2017): the loss was still falling when the
            # cosine schedule reached its floor, so continue with a fresh, lower peak
            st["extend"] = dict(start_step=st["unet_step"], start_time=st["unet_time"], minutes=args.extend_unet)
            st["phase"] = "unet"
            print(f"extending the UNet phase by {args.extend_unet} min from step {st['unet_step']}", flush=True)
    else:
        if args.resume:
            print(f"--resume: no {ckpt_path} yet, starting a new run", flush=True)
        cfg = dict(CONFIGS[args.config or "shapes-64"])
        known = known_token_ids(tok, data_module(cfg))
        enc, dec, te, un = build_models(cfg, known)
        st = dict(config=cfg, known_ids=known, phase="vae", vae_step=0, vae_time=0.0, unet_step=0, unet_time=0.0,
                  scaling_factor=None, seed=args.seed, log=[])
    dm = data_module(cfg)
    new_style = cfg.get("lr_schedule") == "const-cos"
    # budgets: explicit flags win (and are stored); otherwise the stored ones; otherwise the defaults
    for key, flag, default in (("minutes_vae", args.minutes_vae, 14.0), ("minutes_unet", args.minutes_unet, 70.0)):
        if flag is not None:
            if st.get(key) is not None and st[key] != flag:
                print(f"{key}: {st[key]} -> {flag}", flush=True)
            st[key] = flag
        elif st.get(key) is None:
            st[key] = default
    args.minutes_vae, args.minutes_unet = st["minutes_vae"], st["minutes_unet"]
    if args.pool is None:
        args.pool = cfg.get("pool", 30000)
    elif st["phase"] in ("vae", "pool") and cfg.get("pool") not in (None, args.pool):
        print(f"pool: {cfg['pool']} -> {args.pool}", flush=True)
        cfg["pool"] = args.pool
    print(f"config {cfg.get('name', 'shapes-64')} (data {cfg.get('data', 'data')}.py): vae_encoder {nparams(enc)} "
          f"vae_decoder {nparams(dec)} text_encoder {nparams(te)} unet {nparams(un)}; known token ids {len(known)}; "
          f"budgets vae {args.minutes_vae} min, unet {args.minutes_unet} min", flush=True)

    def snapshot(extra=None):
        st.update(vae_encoder=enc.state_dict(), vae_decoder=dec.state_dict(), text_encoder=te.state_dict(), unet=un.state_dict())
        if extra:
            st.update(extra)
        save(st, ckpt_path)

    # ------------------------------------------------------------------ phase 1: VAE
    if st["phase"] == "vae":
        params = list(enc.parameters()) + list(dec.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        if "vae_opt" in st:
            opt.load_state_dict(st["vae_opt"])
        budget = args.minutes_vae * 60
        t0, last_ck = time.time() - st["vae_time"], time.time()
        acc, n = 0.0, 0
        while time.time() - t0 < budget:
            step = st["vae_step"]
            for g in opt.param_groups:
                g["lr"] = lr_at((time.time() - t0) / budget, step, 1e-3, 100)
            x, _ = dm.generate(range(step * args.vae_batch, (step + 1) * args.vae_batch))
            x = x * 2 - 1
            ml = enc(x)
            mean, logvar = ml.chunk(2, 1)
            logvar = logvar.clamp(-30, 20)
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            y = dec(z)
            mse = F.mse_loss(y, x)
            kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
            loss = mse + 1e-6 * kl
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            st["vae_step"] += 1
            acc += mse.item()
            n += 1
            if st["vae_step"] % 50 == 0:
                m = acc / n
                psnr = 10 * math.log10(4.0 / m)
                print(f"vae step {st['vae_step']} t={time.time() - t0:.0f}s mse={m:.5f} psnr~{psnr:.2f}dB kl={kl.item():.1f}", flush=True)
                st["log"].append(("vae", st["vae_step"], round(time.time() - t0), m, psnr))
                acc, n = 0.0, 0
            if time.time() - last_ck > args.ckpt_minutes * 60 or STOP["signal"]:
                st["vae_time"] = time.time() - t0
                snapshot(dict(vae_opt=opt.state_dict()))
                last_ck = time.time()
                if STOP["signal"]:
                    print(f"signal {STOP['signal']}: checkpoint written at vae step {st['vae_step']}, exiting", flush=True)
                    return
        st["vae_time"] = time.time() - t0
        st["phase"] = "pool"
        st.pop("vae_opt", None)
        snapshot()
        print(f"vae done: {st['vae_step']} steps in {st['vae_time']:.0f}s", flush=True)
        if new_style:
            vae_report(enc, dec, dm, cfg, args.out)

    # ------------------------------------------------------------------ phase 2: latent pool
    pool_path = os.path.join(args.out, "pool.pt")
    if st["phase"] == "pool" and os.path.exists(pool_path):  # killed between writing the pool and the checkpoint
        st["scaling_factor"] = 1.0 / torch.load(pool_path)["mean"].std().item()
        st["phase"] = "unet"
        snapshot()
    if st["phase"] == "pool" or not os.path.exists(pool_path):
        t = time.time()
        enc.eval()
        means, logvars, attrs = [], [], []
        # encoded in parts of 5000 saved as they finish, so a session that ends mid-pool keeps them
        part_n = 5000
        with torch.no_grad():
            z = cfg["z"]
            for p0 in range(0, args.pool, part_n):
                part_path = os.path.join(args.out, f"pool_part_{p0 // part_n:03d}.pt")
                if os.path.exists(part_path):
                    part = torch.load(part_path)
                else:
                    pm, pl, pa = [], [], []
                    for k in range(p0, min(args.pool, p0 + part_n), 500):
                        x, a = dm.generate(range(POOL_START + k, POOL_START + min(args.pool, k + 500)))
                        ml = enc(x * 2 - 1)
                        pm.append(ml[:, :z].clone())
                        pl.append(ml[:, z:].clamp(-30, 20).clone())
                        pa.extend(a)
                        if STOP["signal"]:
                            print(f"signal {STOP['signal']} during the pool at {k}; finished parts are kept, exiting", flush=True)
                            return
                    part = dict(mean=torch.cat(pm), logvar=torch.cat(pl), attrs=pa)
                    save(part, part_path)
                    print(f"pool part {p0 // part_n}: {p0 + len(pa)} of {args.pool} latents, {time.time() - t:.0f}s", flush=True)
                means.append(part["mean"])
                logvars.append(part["logvar"])
                attrs.extend(part["attrs"])
        means, logvars = torch.cat(means), torch.cat(logvars)
        std = means.std().item()
        if st.get("scaling_factor") is not None and st["phase"] == "unet":
            # a pool re-encoded after unpacking (checkpoint_pack.py): the UNet has been trained
            # on the stored factor, which must not move with this machine's float rounding
            print(f"pool re-encoded: std {std:.6f} (stored scaling factor {st['scaling_factor']:.6f} kept)", flush=True)
        else:
            st["scaling_factor"] = 1.0 / std
        save(dict(mean=means, logvar=logvars, attrs=attrs), pool_path)
        for p0 in range(0, args.pool, part_n):
            part_path = os.path.join(args.out, f"pool_part_{p0 // part_n:03d}.pt")
            if os.path.exists(part_path):
                os.remove(part_path)
        print(f"pool: {len(attrs)} latents in {time.time() - t:.0f}s; latent mean {means.mean().item():.3f} "
              f"std {std:.4f} -> scaling factor {st['scaling_factor']:.5f}; posterior std mean {torch.exp(0.5 * logvars).mean().item():.4f}", flush=True)
        st["phase"] = "unet"
        snapshot()
    pool = torch.load(pool_path)
    pmean, plogvar, pattrs = pool["mean"], pool["logvar"], pool["attrs"]
    sf = st["scaling_factor"]

    # ------------------------------------------------------------------ phase 3: UNet + text encoder
    if st["phase"] == "unet":
        acp = sd_alphas_cumprod()
        params = list(un.parameters()) + list(te.parameters())
        opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
        ema = {k: v.detach().clone() for k, v in list(un.state_dict().items()) + [("te." + k, v) for k, v in te.state_dict().items()]}
        if "unet_opt" in st:
            opt.load_state_dict(st["unet_opt"])
            ema = st["ema"]
        cache = {}

        def ids_of(text):
            if text not in cache:
                cache[text] = tok(text, MAX_LEN)
            return cache[text]

        ext = st.get("extend")
        budget = args.minutes_unet * 60 if ext is None else ext["start_time"] + ext["minutes"] * 60
        base_lr = cfg.get("unet_lr", 5e-4)
        val = make_validation(enc, dm, cfg, tok, sf, args.out) if new_style else None
        last_val = time.time()
        t0, last_ck = time.time() - st["unet_time"], time.time()
        acc, n = 0.0, 0
        N = pmean.shape[0]
        live = {**{k: v for k, v in un.state_dict().items()}, **{"te." + k: v for k, v in te.state_dict().items()}}
        while time.time() - t0 < budget:
            step = st["unet_step"]
            for g in opt.param_groups:
                if ext is None and new_style:
                    g["lr"] = lr_const_cos((time.time() - t0) / budget, step, base_lr, 300)
                elif ext is None:
                    g["lr"] = lr_at((time.time() - t0) / budget, step, 5e-4, 300)
                else:
                    frac = (time.time() - t0 - ext["start_time"]) / (ext["minutes"] * 60)
                    g["lr"] = lr_at(frac, step - ext["start_step"], args.extend_lr, 50)
            rng = np.random.default_rng([args.seed, step])
            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
            idx = torch.from_numpy(rng.integers(0, N, args.batch))
            caps = [dm.caption(pattrs[i], rng) if rng.random() >= 0.1 else "" for i in idx.tolist()]
            ids = torch.tensor([ids_of(c) for c in caps])
            mu, lv = pmean[idx], plogvar[idx]
            z0 = (mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * lv)) * sf
            t = torch.randint(0, 1000, (args.batch,), generator=gen)
            noise = torch.randn(z0.shape, generator=gen)
            a = acp[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * z0 + (1 - a).sqrt() * noise
            pred = un(xt, t, te(ids))
            loss = F.mse_loss(pred, noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            st["unet_step"] += 1
            d = min(0.999, (1 + st["unet_step"]) / (10 + st["unet_step"]))
            with torch.no_grad():
                for k, v in live.items():
                    if v.dtype.is_floating_point:
                        ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
                    else:
                        ema[k].copy_(v)
            acc += loss.item()
            n += 1
            if st["unet_step"] % args.log_every == 0:
                m = acc / n
                print(f"unet step {st['unet_step']} t={time.time() - t0:.0f}s loss={m:.6f} lr={opt.param_groups[0]['lr']:.2e}", flush=True)
                st["log"].append(("unet", st["unet_step"], round(time.time() - t0), m))
                acc, n = 0.0, 0
            if val is not None and time.time() - last_val > args.val_minutes * 60:
                vl = validate(val, ema, cfg, known)
                print(f"val step {st['unet_step']} t={time.time() - t0:.0f}s ema-loss {vl['all']:.4f} "
                      + " ".join(f"{k}={v:.4f}" for k, v in vl.items() if k != "all"), flush=True)
                st["log"].append(("val", st["unet_step"], round(time.time() - t0), vl))
                last_val = time.time()
            if args.stop_at_step and st["unet_step"] >= args.stop_at_step:
                STOP["signal"] = "stop-at-step"
            if time.time() - last_ck > args.ckpt_minutes * 60 or STOP["signal"]:
                st["unet_time"] = time.time() - t0
                snapshot(dict(unet_opt=opt.state_dict(), ema=ema))
                last_ck = time.time()
                if STOP["signal"]:
                    print(f"signal {STOP['signal']}: checkpoint written at unet step {st['unet_step']}, exiting", flush=True)
                    return
        st["unet_time"] = time.time() - t0
        st["phase"] = "done"
        snapshot(dict(unet_opt=opt.state_dict(), ema=ema))
        print(f"unet done: {st['unet_step']} steps in {st['unet_time']:.0f}s", flush=True)
    print("training complete", flush=True)


def save_png_grid(rows, path, scale=2):
    """rows: list of [N,3,H,W] tensors in [0,1] -> one PNG, a row per tensor."""
    from PIL import Image
    pad = 2
    n, H, W = rows[0].shape[0], rows[0].shape[2], rows[0].shape[3]
    canvas = np.full((len(rows) * (H + pad), n * (W + pad), 3), 255, dtype=np.uint8)
    for r, imgs in enumerate(rows):
        a = (imgs.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for c in range(n):
            canvas[r * (H + pad):r * (H + pad) + H, c * (W + pad):c * (W + pad) + W] = a[c]
    Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST).save(path)


@torch.no_grad()
def vae_report(enc, dec, dm, cfg, out, n=256, fname="vae_roundtrip.png"):
    """Held-out VAE round trip (posterior mean -> decoder, as torchedit's encodeImage): PSNR, by
    background kind and object count, and <out>/vae_roundtrip.png (originals / round trips)."""
    enc.eval()
    dec.eval()
    x, A = dm.generate(range(dm.TEST_START, dm.TEST_START + n))
    rec = torch.cat([((dec(enc(x[k:k + 64] * 2 - 1)[:, :cfg["z"]]) + 1) / 2).clamp(0, 1) for k in range(0, n, 64)])
    mse = ((rec - x) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    ps = 10 * torch.log10(1 / mse)
    groups = {"all": [True] * n}
    if "objects" in A[0]:
        groups.update({"grey bg": [a["bg_kind"] == "grey" for a in A], "tint bg": [a["bg_kind"] == "tint" for a in A],
                       "1 object": [a["n"] == 1 for a in A], "2 objects": [a["n"] == 2 for a in A]})
    parts = []
    for k, sel in groups.items():
        v = ps[torch.tensor(sel)]
        parts.append(f"{k}: mean {v.mean():.2f} min {v.min():.2f}")
    print(f"vae held-out round trip PSNR (n={n}) " + "; ".join(parts), flush=True)
    order = torch.argsort(ps)  # worst first, then a spread
    pick = torch.cat([order[:8], order[torch.linspace(8, n - 1, 8).long()]])
    save_png_grid([x[pick[:8]], rec[pick[:8]], x[pick[8:]], rec[pick[8:]]], os.path.join(out, fname))
    enc.train()
    dec.train()
    return float(ps.mean())


@torch.no_grad()
def make_validation(enc, dm, cfg, tok, sf, out, n=192):
    """Fixed held-out latents, full captions, noises and timesteps for a comparable EMA loss."""
    path = os.path.join(out, "val.pt")
    if os.path.exists(path):
        return torch.load(path)
    enc.eval()
    x, A = dm.generate(range(dm.TEST_START + VAL_START, dm.TEST_START + VAL_START + n))
    z0 = enc(x * 2 - 1)[:, :cfg["z"]] * sf
    g = torch.Generator().manual_seed(777)
    t = torch.linspace(10, 990, n).round().long()[torch.randperm(n, generator=g)]
    caps = [dm.full_caption(a) if hasattr(dm, "full_caption") else "" for a in A]
    v = dict(z0=z0, t=t, noise=torch.randn(z0.shape, generator=g), ids=torch.tensor([tok(c, cfg["max_len"]) for c in caps]),
             two=torch.tensor([a.get("n", 1) == 2 for a in A]))
    torch.save(v, path)
    return v


@torch.no_grad()
def validate(v, ema, cfg, known):
    _, _, te, un = build_models(cfg, known)
    un.load_state_dict({k: x for k, x in ema.items() if not k.startswith("te.")})
    te.load_state_dict({k[3:]: x for k, x in ema.items() if k.startswith("te.")})
    un.eval()
    te.eval()
    acp = sd_alphas_cumprod()
    a = acp[v["t"]].view(-1, 1, 1, 1)
    xt = a.sqrt() * v["z0"] + (1 - a).sqrt() * v["noise"]
    pred = torch.cat([un(xt[k:k + 64], v["t"][k:k + 64], te(v["ids"][k:k + 64])) for k in range(0, xt.shape[0], 64)])
    per = ((pred - v["noise"]) ** 2).mean(dim=(1, 2, 3))
    t = v["t"]
    return {"all": per.mean().item(), "t<300": per[t < 300].mean().item(),
            "t300-700": per[(t >= 300) & (t < 700)].mean().item(), "t>=700": per[t >= 700].mean().item(),
            "1obj": per[~v["two"]].mean().item(), "2obj": per[v["two"]].mean().item()}


def finetune_decoder(args):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed + 7)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    st = torch.load(os.path.join(args.out, "ckpt.pt"))
    enc, dec, _, _ = build_models(st["config"], st["known_ids"])
    enc.load_state_dict(st["vae_encoder"])
    enc.eval()
    path = os.path.join(args.out, "decoder_ft.pt")
    ft = dict(step=0, time=0.0)
    if os.path.exists(path):
        ft = torch.load(path)
        dec.load_state_dict(ft["vae_decoder"])
    else:
        dec.load_state_dict(st["vae_decoder"])
    opt = torch.optim.Adam(dec.parameters(), lr=5e-4)
    if "opt" in ft:
        opt.load_state_dict(ft["opt"])
    budget = args.decoder_only * 60
    t0, last_ck = time.time() - ft["time"], time.time()
    acc, n = 0.0, 0
    start = DECODER_FT_START  # training indices not used by the VAE phase or the pool
    dm = data_module(st["config"])
    z = st["config"]["z"]
    while time.time() - t0 < budget:
        step = ft["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at((time.time() - t0) / budget, step, 5e-4, 50)
        x, _ = dm.generate(range(start + step * args.vae_batch, start + (step + 1) * args.vae_batch))
        x = x * 2 - 1
        with torch.no_grad():
            mean, logvar = enc(x).chunk(2, 1)
            # noise scale U(0,1) per image: good decodes from the posterior mean (what inversion uses)
            # and from posterior samples (what the UNet was trained to generate)
            s = torch.rand(mean.shape[0], 1, 1, 1)
            z = mean + s * torch.randn_like(mean) * torch.exp(0.5 * logvar.clamp(-30, 20))
        mse = F.mse_loss(dec(z), x)
        opt.zero_grad()
        mse.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        ft["step"] += 1
        acc += mse.item()
        n += 1
        if ft["step"] % 50 == 0:
            print(f"decoder-ft step {ft['step']} t={time.time() - t0:.0f}s mse={acc / n:.5f} psnr~{10 * math.log10(4 * n / acc):.2f}dB", flush=True)
            acc, n = 0.0, 0
        if time.time() - last_ck > args.ckpt_minutes * 60 or time.time() - t0 >= budget or STOP["signal"]:
            ft.update(time=time.time() - t0, vae_decoder=dec.state_dict(), opt=opt.state_dict())
            save(ft, path)
            last_ck = time.time()
            if STOP["signal"]:
                print(f"signal {STOP['signal']}: decoder fine-tune saved at step {ft['step']}, exiting", flush=True)
                return
    ft.update(time=time.time() - t0, vae_decoder=dec.state_dict(), opt=opt.state_dict())
    save(ft, path)
    print(f"decoder fine-tune done: {ft['step']} steps in {ft['time']:.0f}s", flush=True)
    if "objects" in dm.attributes(0):
        vae_report(enc, dec, dm, st["config"], args.out, fname="vae_roundtrip_decoder_ft.png")


if __name__ == "__main__":
    main()
