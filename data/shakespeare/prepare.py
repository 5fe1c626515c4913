"""
Tiny Shakespeare in GPT-2 BPE tokens (tiktoken): train.bin and val.bin (uint16, 90/10 split), and meta.json with the
tokenizer's name, the token counts and vocab_size 50304 (GPT-2's 50257, padded to a multiple of 64 for speed); with
--plays also test.bin, the character-level test split's unseen plays in BPE tokens. The split and the encoding are
data/text/prepare.py's (--tokenizer gpt2), which prepares any text file.

    python data/shakespeare/prepare.py                  # downloads input.txt
    python data/shakespeare/prepare.py --input PATH     # or uses a local copy (also: SHAKESPEARE_INPUT=PATH)
"""
import importlib.util
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
    char_prepare = _char_prepare_module()
    text = char_prepare.text_prepare()
    enc = text.gpt2_encoding()  # before any work: without tiktoken or its files, an ImportError or OSError
    path = char_prepare.local_copy(input_path, out_dir)
    with text.Staging(out_dir) as staging:  # every file is renamed into place at the end, meta.json last
        meta = text.prepare_splits([path], staging, "gpt2", val_fraction=0.1)[0]
        for split in ("train", "val"):
            print(f"{split}: {meta[f'{split}_tokens']:,} tokens")
        plays = plays or os.environ.get("SHAKESPEARE_PLAYS")
        if plays:  # the character-level test split's text (data/shakespeare_char/plays.py), in BPE tokens
            from plays import test_text
            test = test_text(None if plays == "download" else plays, sorted(set(char_prepare.read_text(path))))[0]
            ids = np.array(enc.encode_ordinary(test), dtype=np.uint16)
            ids.tofile(staging.path("test.bin"))
            meta["test_tokens"] = len(ids)
            print(f"test: {len(ids):,} tokens from the unseen plays")
        staging.commit(meta)


def main():
    _char_prepare_module().main(prepare, __doc__, HERE)


if __name__ == "__main__":
    main()
