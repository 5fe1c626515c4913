"""
Sample from a trained model, streaming the text as it is generated.

    python sample.py --out_dir=out-shakespeare-char-mingru
    python sample.py --out_dir=out-shakespeare-char-gpt --start="ROMEO:" --cache=tova --cache_size=64
    python sample.py --out_dir=... --start=FILE:prompt.txt --num_samples=3 --max_new_tokens=2000

The prompt is processed in parallel (prefill); then each token is one recurrent step. minGRU/minLSTM carry a
fixed-size state, so they can generate far past block_size in constant memory. The GPT's state is its KV cache,
which --cache bounds to --cache_size entries per layer (cache.py); learned positions stop it at block_size, RoPE's
(pos='rope') do not.
"""
import sys
import time
from dataclasses import dataclass

import torch

from cache import make_cache
from common import (
    CheckpointError,
    DataError,
    autocast_context,
    latest_checkpoint,
    load_meta,
    resolve_device,
    tokenizer,
    train_command,
)
from configurator import ConfigError, parse_config
from model import GPT, GPTConfig, state_nbytes


@dataclass
class SampleConfig:
    out_dir: str = "out"  # the training run's folder: ckpt.pt, or last.pt where that is newer
    start: str = "\n"  # the prompt, or FILE:path to read it from a file
    num_samples: int = 1  # samples to draw, one after another
    max_new_tokens: int | None = None  # None: 500, or as many as the GPT's block_size leaves room for
    temperature: float = 0.8  # 1.0 = as trained, < 1 = more conservative, 0 = greedy
    top_k: int | None = 200  # keep only the k most likely tokens (None: all)
    top_p: float | None = None  # nucleus sampling: keep the smallest set of tokens with this much probability
    seed: int = 1337  # seeds the sampling
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    dtype: str = "float32"  # float32, bfloat16 or float16
    cache: str | None = None  # GPT only: full, window, sink, h2o or tova (default full)
    cache_size: int | None = None  # GPT only: entries per layer for a bounded cache


def check(c, model_config):
    if c.num_samples < 1 or c.max_new_tokens is not None and c.max_new_tokens < 1:
        raise ConfigError("num_samples and max_new_tokens must be >= 1")
    if c.temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 is greedy); got {c.temperature}")
    if c.top_k is not None and c.top_k < 1:
        raise ConfigError(f"top_k must be >= 1 or None; got {c.top_k}")
    if c.top_p is not None and not 0 < c.top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1]; got {c.top_p}")
    if c.cache_size is not None and c.cache_size < 1:
        raise ConfigError(f"cache_size must be >= 1; got {c.cache_size}")
    if model_config.mixer != "attn" and (c.cache is not None or c.cache_size is not None):
        raise ConfigError(f"--cache and --cache_size apply to the GPT's KV cache; this is a {model_config.mixer} "
                          f"model, whose state has a fixed size: drop them, or train a GPT to try them on "
                          f"(python train.py config/shakespeare_char_cpu_gpt.py, then "
                          f"--out_dir=out-shakespeare-char-cpu-gpt)")
    cache = {}
    if model_config.mixer == "attn":
        cache = {"policy": c.cache or "full", "size": c.cache_size}
        if cache["policy"] == "full" and c.cache_size is not None:
            raise ConfigError("--cache_size needs a bounded policy: --cache=window, sink, h2o or tova")
        try:
            make_cache(1, **cache)  # cache.py's own checks, before any work
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return cache


def read_prompt(start):
    if start.startswith("FILE:"):
        try:
            with open(start[5:], encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise ConfigError(f"cannot read the prompt file {start[5:]!r}: {e.strerror}") from None
    return start


def load_model(out_dir, device):
    """The model and its tokenizer, rebuilt from out_dir's later checkpoint alone (ckpt.pt, or last.pt where a Ctrl-C
    saved a later iteration)."""
    path, ckpt = latest_checkpoint(out_dir, map_location=device)
    if ckpt is None:
        raise CheckpointError(f"no checkpoint in {out_dir} (ckpt.pt or last.pt); {train_command(out_dir)}")
    if path.endswith("last.pt"):
        print(f"reading {path} (iteration {ckpt.get('iter_num', '?')}, saved when training stopped; it is later "
              f"than ckpt.pt, if there is one)", file=sys.stderr)
    try:
        model = GPT(GPTConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint in {out_dir} does not match this model.py: "
                              f"{str(e).splitlines()[0][:300]}") from None
    if ckpt.get("dataset") == "selective_copying":
        raise CheckpointError("this checkpoint was trained on selective copying, which is not text to sample from; "
                              "evaluate it with train.py --eval_only=True --init_from=resume instead")
    meta = load_meta(ckpt["dataset"]) if ckpt.get("dataset") else None
    if meta is None and ckpt.get("dataset") and model.config.vocab_size != 50304:  # not GPT-2 BPE: its vocabulary
        raise CheckpointError(f"this model was trained on {ckpt['dataset']!r}, whose meta.json (the vocabulary to "
                              f"decode with) is gone; prepare the dataset again as it was")
    if meta is not None and meta["vocab_size"] > model.config.vocab_size:
        raise CheckpointError(f"data/{ckpt['dataset']}/meta.json has {meta['vocab_size']} tokens but the model only "
                              f"{model.config.vocab_size}: the dataset was prepared again differently")
    return model.to(device).eval(), meta


def main(argv=None):
    try:
        c = parse_config(SampleConfig, sys.argv[1:] if argv is None else argv)
        device = resolve_device(c.device)
        ctx = autocast_context(device, c.dtype)
        model, meta = load_model(c.out_dir, device)
        cache = check(c, model.config)
        encode, decode = tokenizer(meta)
        prompt = read_prompt(c.start)
        if prompt == "":
            raise ConfigError("the prompt is empty; give at least one character, e.g. --start='\\n'")
        try:
            ids = encode(prompt)
        except ValueError as e:
            raise ConfigError(f"{e}; use characters of the training text") from None
        if c.max_new_tokens is None:
            room = model.config.block_size - len(ids) if model.learned_positions else 500
            c.max_new_tokens = min(500, room)
            if c.max_new_tokens < 1:
                raise ConfigError(f"the prompt ({len(ids)} tokens) fills the GPT's block_size="
                                  f"{model.config.block_size}; shorten it")
            if room < 500:
                print(f"note: the GPT stops at block_size={model.config.block_size} tokens (its positions are "
                      f"learned), so it generates {room} after the prompt's {len(ids)}; an RNN mixer or a GPT "
                      f"trained with pos='rope' has no such limit", file=sys.stderr)
        total = len(ids) + c.max_new_tokens
        if model.learned_positions and total > model.config.block_size:
            raise ConfigError(f"the GPT has learned positions for block_size={model.config.block_size} tokens, "
                              f"but the prompt ({len(ids)}) + max_new_tokens ({c.max_new_tokens}) = {total}. A "
                              f"bounded --cache shrinks memory, not the position table: ask for fewer tokens "
                              f"(an RNN mixer or pos='rope' has no such limit)")
    except (ConfigError, CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    torch.manual_seed(c.seed)
    x = torch.tensor(ids, dtype=torch.long, device=device)[None]
    for _ in range(c.num_samples):
        print(prompt, end="", flush=True)
        t0, generated, pending, state = time.perf_counter(), 0, [], None
        with torch.no_grad(), ctx:
            for token, step_state in model.stream(x, c.max_new_tokens, c.temperature, c.top_k, c.top_p, **cache):
                generated, state = generated + 1, step_state
                pending.append(token.item())
                text = decode(pending)
                if "\ufffd" not in text:  # a BPE token can end mid-character: wait for the rest of it
                    print(text, end="", flush=True)
                    pending = []
        print(decode(pending) if pending else "")
        dt = time.perf_counter() - t0
        what = "KV cache" if model.config.mixer == "attn" else "recurrent state"
        print(f"---------------\n{generated} tokens in {dt:.2f} s ({generated / dt:.1f} tokens/s); "
              f"{what}: {state_nbytes(state):,} bytes", flush=True)


if __name__ == "__main__":
    main()
