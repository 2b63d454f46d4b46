"""The token ids a text encoder was trained on, for model.json `textEncoder.knownTokenIds`
(docs/bundle-format.md): torchedit warns when a prompt uses words outside them.

Reads the int32 `remap` buffer of scripts/tinysd's TextEncoder (eager or TorchScript): remap[id] is
the id's embedding row, 0 for the one row every unknown id shares. The BOS, EOS and pad ids are
always included (they start, end and fill every sequence).

As a library (scripts/ on sys.path), e.g. in an exporter before bundle_writer.write_bundle:
    from known_token_ids import known_token_ids
    config["textEncoder"]["knownTokenIds"] = known_token_ids(text_encoder)

As a command, with Debian's torch:
    /usr/bin/python3 scripts/known_token_ids.py BUNDLE_DIR           # prints the ids and their tokens
    /usr/bin/python3 scripts/known_token_ids.py BUNDLE_DIR --write   # writes them into BUNDLE_DIR/model.json
--write keeps every other field of model.json and its key order, in bundle_writer's format
(json.dump with indent=2 and a final newline).
"""
import argparse
import json
import os
import sys
from typing import Iterable, List

CLIP_SPECIAL_IDS = (49406, 49407)  # <|startoftext|>, <|endoftext|> (SD 1.x pads with EOS too)


def known_token_ids(text_encoder, special_ids: Iterable[int] = CLIP_SPECIAL_IDS) -> List[int]:
    """Sorted unique ids with an embedding row of their own in `text_encoder`'s `remap` buffer,
    plus `special_ids`. Raises ValueError when the module has no `remap` buffer (it is not a
    scripts/tinysd text encoder: such a bundle declares no known ids, i.e. all are known)."""
    buffers = dict(text_encoder.named_buffers())
    if "remap" not in buffers:
        raise ValueError("the text encoder has no `remap` buffer (not a scripts/tinysd TextEncoder)")
    remap = buffers["remap"]
    if remap.dim() != 1:
        raise ValueError("the text encoder's `remap` buffer has shape %s, expected [vocab size]" % list(remap.shape))
    ids = set((remap != 0).nonzero().flatten().tolist())
    for i in special_ids:
        if not 0 <= i < remap.shape[0]:
            raise ValueError("special id %d is outside the vocabulary [0, %d)" % (i, remap.shape[0]))
        ids.add(int(i))
    return sorted(ids)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="bundle folder (model.json, text_encoder.pt, tokenizer/)")
    ap.add_argument("--write", action="store_true", help="write textEncoder.knownTokenIds into model.json")
    args = ap.parse_args(argv)
    import torch

    path = os.path.join(args.bundle, "model.json")
    with open(path) as f:
        config = json.load(f)
    te = config["textEncoder"]
    specials = (te["bosTokenId"], te["eosTokenId"], te["padTokenId"])
    ids = known_token_ids(torch.jit.load(os.path.join(args.bundle, "text_encoder.pt"), map_location="cpu"), specials)
    with open(os.path.join(args.bundle, "tokenizer", "vocab.json")) as f:
        token_of = {i: t for t, i in json.load(f).items()}
    print("%d known ids: %s" % (len(ids), " ".join("%d=%s" % (i, token_of.get(i, "?")) for i in ids)))
    if args.write:
        te["knownTokenIds"] = ids
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        print("wrote textEncoder.knownTokenIds to %s" % path)


if __name__ == "__main__":
    sys.exit(main())
