"""
Tiny Shakespeare in GPT-2 BPE tokens (tiktoken): train.bin and val.bin (uint16, 90/10 split), and meta.json with the
tokenizer's name, the token counts and vocab_size 50304 (GPT-2's 50257, padded to a multiple of 64 for speed).

    python data/shakespeare/prepare.py                  # downloads input.txt
    python data/shakespeare/prepare.py --input PATH     # or uses a local copy (also: SHAKESPEARE_INPUT=PATH)
"""
import importlib.util
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _char_prepare_module():
    # the download, --input and the command line are data/shakespeare_char's; load that script, not a copy
    path = os.path.join(HERE, "..", "shakespeare_char", "prepare.py")
    spec = importlib.util.spec_from_file_location("shakespeare_char_prepare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(input_path=None, out_dir=HERE):
    import tiktoken
    text = _char_prepare_module().read_text(input_path, out_dir)
    n = len(text)
    enc = tiktoken.get_encoding("gpt2")
    meta = {"tokenizer": "gpt2", "vocab_size": 50304}
    for split, part in {"train": text[: int(n * 0.9)], "val": text[int(n * 0.9):]}.items():
        ids = np.array(enc.encode_ordinary(part), dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, f"{split}.bin"))
        meta[f"{split}_tokens"] = len(ids)
        print(f"{split}: {len(ids):,} tokens")
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)


def main():
    _char_prepare_module().main(prepare, __doc__, HERE)


if __name__ == "__main__":
    main()
