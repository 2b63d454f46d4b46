"""The command line that ledits_reference.py and dpm_reference.py share:

  SCRIPT invert BUNDLE OUT.safetensors < request.json
  SCRIPT edit BUNDLE INVERSION.safetensors OUT.safetensors < request.json
  SCRIPT selftest BUNDLE

The request is JSON on stdin, the result a safetensors file; torch runs on one thread. Any other
arguments exit with the script's usage (its docstring). The importing script has put
scripts/ (safetensors_io) and this folder (sd_reference) on sys.path.
"""
import json
import sys

import torch

from safetensors_io import load_file, save_file
from sd_reference import Bundle


def run(usage, invert, edit, selftest):
    """Dispatches sys.argv: invert(bundle, request) -> (tensors, metadata) is saved to OUT;
    edit(bundle, inversion tensors, inversion metadata, request) -> tensors is saved to OUT;
    selftest(bundle_dir) -> bool is the exit status."""
    torch.set_num_threads(1)
    if len(sys.argv) < 3:
        sys.exit(usage)
    command = sys.argv[1]
    if command == "selftest":
        sys.exit(0 if selftest(sys.argv[2]) else 1)
    if command == "invert" and len(sys.argv) == 4:
        bundle = Bundle(sys.argv[2])
        tensors, metadata = invert(bundle, json.load(sys.stdin))
        save_file(tensors, sys.argv[3], metadata)
    elif command == "edit" and len(sys.argv) == 5:
        bundle = Bundle(sys.argv[2])
        inv, meta = load_file(sys.argv[3])
        save_file(edit(bundle, inv, meta, json.load(sys.stdin)), sys.argv[4])
    else:
        sys.exit(usage)
