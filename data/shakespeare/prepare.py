"""
Tiny Shakespeare in GPT-2 BPE tokens (tiktoken): train.bin and val.bin (uint16, 90/10 split), and meta.json with the
tokenizer's name, the token counts and vocab_size 50304 (GPT-2's 50257, padded to a multiple of 64 for speed); with
--plays also test.bin, the character-level test split's unseen plays in BPE tokens.

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


def prepare(input_path=None, out_dir=HERE, plays=None):
    import tiktoken
    char_prepare = _char_prepare_module()
    text = char_prepare.read_text(input_path, out_dir)
    n = len(text)
    enc = tiktoken.get_encoding("gpt2")
    meta = {"tokenizer": "gpt2", "vocab_size": 50304}
    for split, part in {"train": text[: int(n * 0.9)], "val": text[int(n * 0.9):]}.items():
        ids = np.array(enc.encode_ordinary(part), dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, f"{split}.bin"))
        meta[f"{split}_tokens"] = len(ids)
        print(f"{split}: {len(ids):,} tokens")
    plays = plays or os.environ.get("SHAKESPEARE_PLAYS")
    if plays:  # the character-level test split's text (data/shakespeare_char/plays.py), in BPE tokens
        from plays import test_text
        test = test_text(None if plays == "download" else plays, sorted(set(text)))[0]
        ids = np.array(enc.encode_ordinary(test), dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, "test.bin"))
        meta["test_tokens"] = len(ids)
        print(f"test: {len(ids):,} tokens from the unseen plays")
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)


def main():
    _char_prepare_module().main(prepare, __doc__, HERE)


if __name__ == "__main__":
    main()
