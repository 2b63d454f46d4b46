"""Train the shapes-64 latent diffusion model on the CPU (VAE first, then UNet + text encoder).

    OMP_NUM_THREADS=1 nohup /usr/bin/python3 scripts/tinysd/train.py --out /work/train-run \
        [--resume] [--minutes-vae 14] [--minutes-unet 70] > /work/train-run/log.txt 2>&1 &
    # later, more UNet training from the finished checkpoint (warm restart):
    ... train.py --out /work/train-run --resume --extend-unet 70 >> /work/train-run/log.txt

Seeded (--seed), single-threaded, prints its losses, writes <out>/ckpt.pt every few minutes
(atomically) and resumes from it with --resume (time budgets count the time already spent).
Phases: vae -> pool (encode a fixed pool of training images to posterior mean/logvar, measure
the latent std -> scaling factor) -> unet -> done. Data come from data.py training indices only.
Export with scripts/tinysd/export.py, which works from any checkpoint that has reached the unet phase.
"""
import argparse
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from clip_bpe import ClipBPE  # noqa: E402
from models import VAEEncoder, VAEDecoder, TextEncoder, UNet, nparams  # noqa: E402

TOKENIZER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data", "clip-tokenizer")
if not os.path.isdir(TOKENIZER_DIR):
    TOKENIZER_DIR = "/work/shared/data/clip-tokenizer"
MAX_LEN = 32
CONFIG = dict(vae_ch=(16, 32, 64, 128), z=4, unet_ch=(96, 128), ctx_dim=128, heads=4, text_layers=2,
              text_heads=4, max_len=MAX_LEN, latent_size=8)
POOL_START = 100_000_000  # pool images use training indices [POOL_START, POOL_START + pool)


def sd_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def known_token_ids(tok):
    rng = np.random.default_rng(12345)
    ids = {tok.bos_id, tok.eos_id}
    for i in range(20000):
        ids.update(tok.encode(data.caption(data.attributes(i), rng)))
    for w in list(data.COLORS) + data.SHAPES + list(data.BACKGROUNDS) + list(data.SIZES) + ["left", "right", "middle", "center"]:
        ids.update(tok.encode(w))
    return sorted(ids)


def build_models(cfg, known_ids):
    enc = VAEEncoder(cfg["vae_ch"], cfg["z"])
    dec = VAEDecoder(cfg["vae_ch"], cfg["z"])
    te = TextEncoder(known_ids, d=cfg["ctx_dim"], layers=cfg["text_layers"], heads=cfg["text_heads"], max_len=cfg["max_len"])
    un = UNet(cfg["z"], tuple(cfg["unet_ch"]), cfg["ctx_dim"], cfg["heads"], cfg["latent_size"])
    return enc, dec, te, un


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
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes-vae", type=float, default=14)
    ap.add_argument("--minutes-unet", type=float, default=70)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool", type=int, default=30000)
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

    if args.resume and os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        cfg, known = st["config"], st["known_ids"]
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
        cfg = dict(CONFIG)
        known = known_token_ids(tok)
        enc, dec, te, un = build_models(cfg, known)
        st = dict(config=cfg, known_ids=known, phase="vae", vae_step=0, vae_time=0.0, unet_step=0, unet_time=0.0,
                  scaling_factor=None, seed=args.seed, log=[])
    print(f"params: vae_encoder {nparams(enc)} vae_decoder {nparams(dec)} text_encoder {nparams(te)} "
          f"unet {nparams(un)}; known token ids {len(known)}", flush=True)

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
            x, _ = data.generate(range(step * args.vae_batch, (step + 1) * args.vae_batch))
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
            if time.time() - last_ck > args.ckpt_minutes * 60:
                st["vae_time"] = time.time() - t0
                snapshot(dict(vae_opt=opt.state_dict()))
                last_ck = time.time()
        st["vae_time"] = time.time() - t0
        st["phase"] = "pool"
        st.pop("vae_opt", None)
        snapshot()
        print(f"vae done: {st['vae_step']} steps in {st['vae_time']:.0f}s", flush=True)

    # ------------------------------------------------------------------ phase 2: latent pool
    pool_path = os.path.join(args.out, "pool.pt")
    if st["phase"] == "pool" or not os.path.exists(pool_path):
        t = time.time()
        enc.eval()
        means, logvars, attrs = [], [], []
        with torch.no_grad():
            for k in range(0, args.pool, 500):
                x, a = data.generate(range(POOL_START + k, POOL_START + min(args.pool, k + 500)))
                ml = enc(x * 2 - 1)
                means.append(ml[:, :4].clone())
                logvars.append(ml[:, 4:].clamp(-30, 20).clone())
                attrs.extend(a)
        means, logvars = torch.cat(means), torch.cat(logvars)
        std = means.std().item()
        st["scaling_factor"] = 1.0 / std
        torch.save(dict(mean=means, logvar=logvars, attrs=attrs), pool_path)
        print(f"pool: {len(attrs)} latents in {time.time() - t:.0f}s; latent mean {means.mean().item():.3f} "
              f"std {std:.4f} -> scaling factor {1 / std:.5f}; posterior std mean {torch.exp(0.5 * logvars).mean().item():.4f}", flush=True)
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
        t0, last_ck = time.time() - st["unet_time"], time.time()
        acc, n = 0.0, 0
        N = pmean.shape[0]
        live = {**{k: v for k, v in un.state_dict().items()}, **{"te." + k: v for k, v in te.state_dict().items()}}
        while time.time() - t0 < budget:
            step = st["unet_step"]
            for g in opt.param_groups:
                if ext is None:
                    g["lr"] = lr_at((time.time() - t0) / budget, step, 5e-4, 300)
                else:
                    frac = (time.time() - t0 - ext["start_time"]) / (ext["minutes"] * 60)
                    g["lr"] = lr_at(frac, step - ext["start_step"], args.extend_lr, 50)
            rng = np.random.default_rng([args.seed, step])
            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
            idx = torch.from_numpy(rng.integers(0, N, args.batch))
            caps = [data.caption(pattrs[i], rng) if rng.random() >= 0.1 else "" for i in idx.tolist()]
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
            if st["unet_step"] % 50 == 0:
                m = acc / n
                print(f"unet step {st['unet_step']} t={time.time() - t0:.0f}s loss={m:.4f} lr={opt.param_groups[0]['lr']:.2e}", flush=True)
                st["log"].append(("unet", st["unet_step"], round(time.time() - t0), m))
                acc, n = 0.0, 0
            if time.time() - last_ck > args.ckpt_minutes * 60:
                st["unet_time"] = time.time() - t0
                snapshot(dict(unet_opt=opt.state_dict(), ema=ema))
                last_ck = time.time()
        st["unet_time"] = time.time() - t0
        st["phase"] = "done"
        snapshot(dict(unet_opt=opt.state_dict(), ema=ema))
        print(f"unet done: {st['unet_step']} steps in {st['unet_time']:.0f}s", flush=True)
    print("training complete", flush=True)


def finetune_decoder(args):
    torch.set_num_threads(1)
    torch.manual_seed(args.seed + 7)
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
    start = 500_000_000  # training indices not used by the VAE phase or the pool
    while time.time() - t0 < budget:
        step = ft["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at((time.time() - t0) / budget, step, 5e-4, 50)
        x, _ = data.generate(range(start + step * args.vae_batch, start + (step + 1) * args.vae_batch))
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
        if time.time() - last_ck > args.ckpt_minutes * 60 or time.time() - t0 >= budget:
            ft.update(time=time.time() - t0, vae_decoder=dec.state_dict(), opt=opt.state_dict())
            save(ft, path)
            last_ck = time.time()
    ft.update(time=time.time() - t0, vae_decoder=dec.state_dict(), opt=opt.state_dict())
    save(ft, path)
    print(f"decoder fine-tune done: {ft['step']} steps in {ft['time']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
