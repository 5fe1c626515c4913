"""
What train.py, sample.py and the benchmarks share: device and dtype setup, checkpoint I/O, datasets and batches.
"""
import importlib.util
import json
import os
import tempfile
from contextlib import nullcontext

import numpy as np
import torch

from configurator import ConfigError

# data/<dataset>/prepare.py makes each dataset; its files (train.bin, val.bin, meta.json) live beside it, or under
# $MINRNN_DATA_DIR/<dataset>/ where that is set (the tests prepare their excerpt of tiny Shakespeare there)
SCRIPTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DATA_DIR = os.environ.get("MINRNN_DATA_DIR") or SCRIPTS_DIR
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class DataError(ValueError):
    """A dataset that is missing, truncated or too small; the message says how to fix it."""


# ----------------------------------------------------------------------------- device and dtype

def resolve_device(device):
    """'auto' picks cuda, then mps, then cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use --device=cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available here; use --device=cpu")
    return device


def autocast_context(device, dtype):
    """The autocast context for a dtype name: float32 runs as is, bfloat16/float16 under autocast."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    device_type = device.split(":")[0]
    if dtype == "bfloat16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bfloat16; use --dtype=float16 (with loss scaling) or --dtype=float32")
    if dtype == "float32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=DTYPES[dtype])


# ----------------------------------------------------------------------------- checkpoints

class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message says which file and why."""


TEMP_PREFIX, TEMP_SUFFIX = ".ckpt-", ".tmp"  # the names of save_checkpoint's temp files, for the clean-up below


def atomic_write(path, write, prefix=TEMP_PREFIX):
    """Write a file at path atomically: write(f) into a temp file in the same directory (binary), fsync, then rename
    it over the old file. A crash, a kill or a full disk at any point leaves the previous file as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private (0600); the file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(path, obj):
    """Write obj to path atomically (atomic_write): the previous checkpoint survives any failure."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))
    except OSError as e:
        raise CheckpointError(f"could not save checkpoint {path}: {e.strerror or e}; "
                              f"the previous checkpoint, if any, is unchanged") from e


def write_json(path, data, indent=2):
    """Every results JSON (experiments_out/, bench_out/) is written here, atomically (atomic_write): a Ctrl-C or an
    out-of-memory kill mid-write leaves the previous file, and the earlier runs merged into it, whole."""
    text = json.dumps(data, indent=indent)
    atomic_write(path, lambda f: f.write(text.encode()), prefix=f".{os.path.basename(path)}-")


def remove_stale_temp_files(directory):
    """Delete the temp files that saves killed mid-write (SIGKILL, power loss) left behind. Call it before a run's
    first save, while no save is under way. Returns how many it deleted."""
    if not os.path.isdir(directory):
        return 0
    stale = [f for f in os.listdir(directory) if f.startswith(TEMP_PREFIX) and f.endswith(TEMP_SUFFIX)]
    for f in stale:
        os.remove(os.path.join(directory, f))
    return len(stale)


def train_command(out_dir):
    """How to make a checkpoint in out_dir: the config whose out_dir it is, else train.py with --out_dir."""
    config_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config")
    name = os.path.basename(os.path.normpath(out_dir))
    for config in sorted(os.listdir(config_dir)) if os.path.isdir(config_dir) else []:
        with open(os.path.join(config_dir, config)) as f:
            if f'out_dir = "{name}"' in f.read():
                return f"make one with: python train.py config/{config}"
    return f"make one with: python train.py CONFIG --out_dir={out_dir} (or check --out_dir)"


def latest_checkpoint(out_dir, map_location="cpu"):
    """out_dir's later training state: ckpt.pt (the best val loss, or the latest with always_save_checkpoint) or
    last.pt (written at a Ctrl-C when ckpt.pt keeps the best), by iteration, ckpt.pt on a tie. Returns (path,
    checkpoint), or (None, None) where neither is there."""
    paths = [os.path.join(out_dir, name) for name in ("ckpt.pt", "last.pt")]
    found = {p: load_checkpoint(p, map_location) for p in paths if os.path.exists(p)}
    if not found:
        return None, None
    path = max(found, key=lambda p: found[p]["iter_num"])
    return path, found[path]


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by save_checkpoint. weights_only=True: the file can hold tensors and plain
    containers only, and loading it never runs code from it."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}; {train_command(os.path.dirname(path))}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); it may be truncated, corrupt or not a "
                              f"checkpoint of this project") from None
    if not isinstance(ckpt, dict) or not {"model", "model_args", "iter_num"} <= ckpt.keys():
        raise CheckpointError(f"{path} loads, but is not a checkpoint of this project "
                              f"(it lacks the model, model_args and iter_num entries)")
    return ckpt


# ----------------------------------------------------------------------------- datasets

def dataset_dir(dataset):
    return os.path.join(DATA_DIR, dataset)


def load_meta(dataset):
    """The dataset's meta.json (vocab_size, token counts, and chars for character-level data), or None."""
    path = os.path.join(dataset_dir(dataset), "meta.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def tokenizer(meta):
    """encode(str) -> list[int] and decode(list[int]) -> str for the tokenizer meta.json names: "char" (its chars)
    or "gpt2" (BPE). A meta.json without the key is the character level if it has chars, else GPT-2 BPE."""
    name = (meta or {}).get("tokenizer", "char" if meta is not None and "chars" in meta else "gpt2")
    if name not in ("char", "gpt2"):
        raise DataError(f"meta.json names the tokenizer {name!r}; this project knows char and gpt2")
    if name == "char":
        stoi = {ch: i for i, ch in enumerate(meta["chars"])}
        itos = meta["chars"]

        def encode(s):
            unknown = sorted(set(s) - stoi.keys())
            if unknown:
                raise ValueError(f"the prompt has characters outside the vocabulary: {unknown!r}")
            return [stoi[c] for c in s]

        return encode, lambda ids: "".join(itos[i] for i in ids)
    import tiktoken
    enc = tiktoken.get_encoding("gpt2")
    return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), enc.decode


def prepare_dataset(dataset):
    """Run data/<dataset>/prepare.py's prepare() unless train.bin, val.bin and meta.json are all there. meta.json is
    written last, so its absence means the dataset was never prepared or its preparation was cut short."""
    directory = dataset_dir(dataset)
    if all(os.path.exists(os.path.join(directory, f)) for f in ("train.bin", "val.bin", "meta.json")):
        return
    script = os.path.join(SCRIPTS_DIR, dataset, "prepare.py")
    if not os.path.exists(script) or dataset == "text":  # data/text/prepare.py makes datasets of other names
        known = sorted(d for d in os.listdir(SCRIPTS_DIR)
                       if d != "text" and os.path.exists(os.path.join(SCRIPTS_DIR, d, "prepare.py")))
        raise ConfigError(f"unknown dataset {dataset!r}: nothing is prepared under {directory}. For your own text: "
                          f"python data/text/prepare.py --input FILE --name {dataset} (built in: "
                          f"{', '.join(known + ['selective_copying'])})")
    print(f"dataset {dataset!r} is not prepared yet; running data/{dataset}/prepare.py")
    spec = importlib.util.spec_from_file_location(f"prepare_{dataset}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.prepare(out_dir=directory)
    except ImportError as e:
        raise DataError(f"could not prepare {dataset!r}: {e}") from None
    except OSError as e:
        raise DataError(f"could not prepare {dataset!r} ({e}). Without internet, point it at a local copy: "
                        f"python data/{dataset}/prepare.py --input PATH/TO/input.txt") from None


def how_to_prepare(dataset):
    """The command that makes dataset: its own script, or data/text/prepare.py for a dataset of the user's text."""
    if os.path.exists(os.path.join(SCRIPTS_DIR, dataset, "prepare.py")) and dataset != "text":
        return f"python data/{dataset}/prepare.py"
    return f"python data/text/prepare.py --input FILE --name {dataset} --force"


class Batches:
    """Random (x, y) windows of block_size + 1 tokens from data/<dataset>/{train,val}.bin, as nanoGPT, and test.bin
    where the dataset has one: text that is only ever reported, never chosen by (eval_splits)."""

    def __init__(self, dataset, block_size, batch_size, device):
        self.block_size, self.batch_size, self.device = block_size, batch_size, device
        splits = ("train", "val", "test") if os.path.exists(os.path.join(dataset_dir(dataset), "test.bin")) else \
            ("train", "val")
        self.paths = {s: os.path.join(dataset_dir(dataset), f"{s}.bin") for s in splits}
        self.eval_splits = splits[1:]  # the whole-split losses a run ends with
        meta = load_meta(dataset) or {}
        for split, path in self.paths.items():
            size = os.path.getsize(path)
            expected = meta.get(f"{split}_tokens")
            if size % 2 or expected is not None and size != 2 * expected:
                should = "whole uint16 tokens" if expected is None else f"{expected} uint16 tokens"
                raise DataError(f"{path} is {size} bytes, but should hold {should}: the file is truncated or "
                                f"stale; prepare the dataset again ({how_to_prepare(dataset)})")
            if size // 2 < block_size + 1:
                raise DataError(f"{path} holds {size // 2} tokens, fewer than block_size + 1 = {block_size + 1}; "
                                f"use a smaller block_size or more data")

    def get(self, split, generator, length=None, n=None):
        """n (default batch_size) random windows of `length` (default block_size) tokens."""
        T = length or self.block_size
        # a fresh memmap per batch avoids a memory leak, as nanoGPT notes
        data = np.memmap(self.paths[split], dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - T, (n or self.batch_size,), generator=generator)
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix.tolist()])
        return self._to_device(x, y)

    def windows(self, split, batch_size):
        """Every position of a split once: (x, y) batches of consecutive non-overlapping block_size windows, in
        order. The tail after the last whole window (fewer than block_size tokens) is left out."""
        data = np.memmap(self.paths[split], dtype=np.uint16, mode="r")
        T, n = self.block_size, self.n_windows(split)
        for start in range(0, n, batch_size):
            end = min(n, start + batch_size)  # windows start..end-1 are one contiguous stretch of the split
            x = torch.from_numpy(data[start * T:end * T].astype(np.int64).reshape(-1, T))
            y = torch.from_numpy(data[start * T + 1:end * T + 1].astype(np.int64).reshape(-1, T))
            yield self._to_device(x, y)

    def n_windows(self, split):
        """How many whole block_size windows windows() yields, each with its next-token targets inside the split."""
        return (os.path.getsize(self.paths[split]) // 2 - 1) // self.block_size

    def _to_device(self, x, y):
        if self.device.startswith("cuda"):
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)


@torch.no_grad()
def split_loss(model, batches, split="val", batch_size=64, ctx=None, progress=False):
    """Mean cross-entropy over every position of a split (Batches.windows): deterministic, no sampling noise.
    Returns (loss, number of tokens scored)."""
    from tqdm import tqdm
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n_batches = -(-batches.n_windows(split) // batch_size)
    for x, y in tqdm(batches.windows(split, batch_size), total=n_batches, desc=f"{split} split",
                     disable=not progress, leave=False):
        with ctx or nullcontext():
            _, loss = model(x, y)
        total += loss.double().item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count, count


def whole_split_losses(model, batches, iter_num, log, ctx=None, progress=False, known=None):
    """The numbers a run ends with: the loss over every position of the val split, the one runs are compared and
    chosen by, and of the test split where the dataset has one, reported beside it and never chosen by. known:
    {split: (loss, tokens)} already computed at this iteration. Returns {split: (loss, tokens)}."""
    losses = {}
    for split in batches.eval_splits:
        loss, n_tokens = losses[split] = (known or {}).get(split) or \
            split_loss(model, batches, split, ctx=ctx, progress=progress)
        log(f"whole {split} split: loss {loss:.4f} over {n_tokens:,} tokens (model at iteration {iter_num})")
    return losses
