"""The CLIP tokenizer the training and export scripts use: the repository's Python CLIP BPE
(test/reference/clip_tokenizer.py, written from OpenAI's simple_tokenizer and checked against
lib/tokenizer/clipTokenizer.ts by test/unit/tokenizer.test.ts), so the ids a model is trained on
are the ids torchedit feeds it. Needs Debian's python3-regex.

    tok = ClipBPE("models/shapes-64/tokenizer")      # the repository's copy (vocab.json, merges.txt)
    tok.encode("a photo of a cat")        -> [320, 1125, 539, 320, 2368]
    tok("a photo of a cat", max_length=77) -> [49406, 320, ..., 49407, 49407, ...]   (padded)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "reference"))
from clip_tokenizer import SimpleTokenizer  # noqa: E402


class ClipBPE(SimpleTokenizer):
    def __init__(self, tokenizer_dir, bos_id=49406, eos_id=49407, pad_id=49407):
        super().__init__(tokenizer_dir)
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    def __call__(self, text, max_length=77):
        ids = [self.bos_id] + self.encode(text)[: max_length - 2] + [self.eos_id]
        return ids + [self.pad_id] * (max_length - len(ids))


if __name__ == "__main__":
    t = ClipBPE(sys.argv[1] if len(sys.argv) > 1 else
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "shapes-64", "tokenizer"))
    print(t("a photo of a cat", 10))
