"""CLIP byte-level BPE tokenizer (the OpenAI CLIP / diffusers CLIPTokenizer algorithm) in plain
Python, used to turn training captions into the token ids the bundle's text encoder reads.

Needs Debian's python3-regex (for \\p{L} / \\p{N}). No ftfy: text is whitespace-normalised and
lower-cased, which is what CLIPTokenizer does when ftfy is absent.

    tok = ClipBPE("/work/shared/data/clip-tokenizer")
    tok.encode("a photo of a cat")        -> [320, 1125, 539, 320, 2368]
    tok("a photo of a cat", max_length=77) -> [49406, 320, ..., 49407, 49407, ...]   (padded)
"""
import functools
import json
import os

import regex


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class ClipBPE:
    PAT = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE)

    def __init__(self, tokenizer_dir, bos_id=49406, eos_id=49407, pad_id=49407):
        with open(os.path.join(tokenizer_dir, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(tokenizer_dir, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(l.split()) for l in lines[1:] if l.strip() and not l.startswith("#version")]
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        self.cache[token] = word
        return word

    def encode(self, text):
        text = " ".join(text.split()).lower()
        ids = []
        for tok in regex.findall(self.PAT, text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok))
        return ids

    def __call__(self, text, max_length=77):
        ids = [self.bos_id] + self.encode(text)[: max_length - 2] + [self.eos_id]
        return ids + [self.pad_id] * (max_length - len(ids))


if __name__ == "__main__":
    import sys
    t = ClipBPE(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/clip-tokenizer")
    print(t("a photo of a cat", 10))
