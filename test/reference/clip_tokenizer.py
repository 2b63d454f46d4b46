#!/usr/bin/python3
"""Independent oracle for lib/tokenizer/clipTokenizer.ts.

Written from OpenAI CLIP's clip/simple_tokenizer.py (SimpleTokenizer.encode) and
clip/clip.py (tokenize: BOS + ids + EOS, truncate keeping EOS, pad). It shares no
code with the TypeScript tokenizer and uses a different regex engine (the
`regex` module, Debian package python3-regex), so it checks our Unicode classes.

Differences from OpenAI, on purpose:
- ftfy is not installed here. Of what ftfy.fix_text does, only its final NFC
  normalisation is reproduced (it is also what transformers' CLIPTokenizerFast
  does); mojibake repair, curly-quote and full-width fixes are not.
- The vocabulary is rebuilt from merges.txt exactly as OpenAI does, then checked
  against vocab.json, so a vocab.json that disagrees with the merges is reported.
- The pad id is a parameter (OpenAI always pads with 0; SD1 bundles use 49407).

Usage: clip_tokenizer.py --vocab-dir DIR --max-length N --pad-id P < prompts.json
  stdin: JSON list of strings; stdout: JSON list of id lists, each N long.
  With --no-pad: the BPE ids only (no BOS/EOS, no truncation, no padding).
"""

import argparse
import html
import json
import os
import sys
import unicodedata

import regex as re


def bytes_to_unicode():
    # Printable Latin-1 bytes map to themselves; the other 68 bytes are moved
    # to 256.. so every byte has a visible, non-whitespace character.
    bs = (list(range(ord("!"), ord("~") + 1))
          + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


def basic_clean(text):
    text = unicodedata.normalize("NFC", text)  # stands in for ftfy.fix_text
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r"\s+", " ", text)
    return text.strip()


class SimpleTokenizer:
    def __init__(self, vocab_dir):
        self.byte_encoder = bytes_to_unicode()
        with open(os.path.join(vocab_dir, "merges.txt"), encoding="utf-8") as f:
            merges = f.read().split("\n")
        merges = merges[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges if m.strip()]
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        for merge in merges:
            vocab.append("".join(merge))
        vocab.extend(["<|startoftext|>", "<|endoftext|>"])
        self.encoder = dict(zip(vocab, range(len(vocab))))
        with open(os.path.join(vocab_dir, "vocab.json"), encoding="utf-8") as f:
            if json.load(f) != self.encoder:
                sys.exit("oracle: vocab.json does not match the vocabulary rebuilt from merges.txt")
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = re.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            re.IGNORECASE,
        )

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        text = whitespace_clean(basic_clean(text)).lower()
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab-dir", required=True)
    parser.add_argument("--max-length", type=int, default=77)
    parser.add_argument("--pad-id", type=int, default=0)
    parser.add_argument("--no-pad", action="store_true")
    args = parser.parse_args()

    tok = SimpleTokenizer(args.vocab_dir)
    sot = tok.encoder["<|startoftext|>"]
    eot = tok.encoder["<|endoftext|>"]
    out = []
    for text in json.load(sys.stdin):
        if args.no_pad:
            out.append(tok.encode(text))
            continue
        ids = [sot] + tok.encode(text) + [eot]
        if len(ids) > args.max_length:  # clip.tokenize(truncate=True)
            ids = ids[:args.max_length]
            ids[-1] = eot
        out.append(ids + [args.pad_id] * (args.max_length - len(ids)))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
