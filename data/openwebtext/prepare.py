"""
OpenWebText in GPT-2 BPE tokens, as nanoGPT prepares it: about 9B train tokens (train.bin, ~17 GB) and 4M val
tokens. It needs the Hugging Face `datasets` package, internet access and ~54 GB of disk for the download cache.
This project cannot test it offline; it follows nanoGPT's recipe.

    pip install datasets && python data/openwebtext/prepare.py
"""
import argparse
import json
import os

import numpy as np
from tqdm import tqdm

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_PROC = max(1, os.cpu_count() // 2)


def prepare(input_path=None, out_dir=HERE):
    """The entry point every data/*/prepare.py has. meta.json is written last: without it the dataset counts as
    unprepared, so a run killed half-way is prepared again instead of being read as whole."""
    if input_path is not None:
        raise ValueError("openwebtext is downloaded from the Hugging Face hub; it takes no input file")
    try:
        from datasets import load_dataset
    except ImportError:
        raise ImportError("preparing openwebtext needs the datasets package: pip install datasets") from None
    import tiktoken
    enc = tiktoken.get_encoding("gpt2")
    dataset = load_dataset("openwebtext", num_proc=NUM_PROC)
    split = dataset["train"].train_test_split(test_size=0.0005, seed=2357, shuffle=True)
    split["val"] = split.pop("test")

    def process(example):
        ids = enc.encode_ordinary(example["text"])
        ids.append(enc.eot_token)  # documents are separated by <|endoftext|>
        return {"ids": ids, "len": len(ids)}

    tokenized = split.map(process, remove_columns=["text"], desc="tokenizing", num_proc=NUM_PROC)
    meta = {"tokenizer": "gpt2", "vocab_size": 50304}
    for name, dset in tokenized.items():
        total = int(np.sum(dset["len"], dtype=np.uint64))
        meta[f"{name}_tokens"] = total
        arr = np.memmap(os.path.join(out_dir, f"{name}.bin"), dtype=np.uint16, mode="w+", shape=(total,))
        shards, index = 1024, 0
        for i in tqdm(range(shards), desc=f"writing {name}.bin"):
            batch = dset.shard(num_shards=shards, index=i, contiguous=True).with_format("numpy")
            ids = np.concatenate(batch["ids"])
            arr[index:index + len(ids)] = ids
            index += len(ids)
        arr.flush()
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default=HERE)
    try:
        prepare(out_dir=parser.parse_args().out_dir)
    except ImportError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
