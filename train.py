"""
Train a GPT, minGRU or minLSTM language model. nanoGPT's loop, with checked configs and safe checkpoints.

    python train.py config/shakespeare_char_mingru.py
    python train.py config/shakespeare_char_gpt.py --device=cpu --max_iters=500 --compile=False
    torchrun --standalone --nproc_per_node=2 train.py config/...     # DDP: NCCL on GPUs, gloo on CPUs

Every key below (training and model) can be set in the config file or overridden with --key=value.
"""
import dataclasses
import gc
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from common import (
    Batches,
    CheckpointError,
    DataError,
    autocast_context,
    latest_checkpoint,
    load_meta,
    prepare_dataset,
    remove_stale_temp_files,
    resolve_device,
    save_checkpoint,
    split_loss,
    whole_split_losses,
)
from configurator import ConfigError, parse_config
from model import GPT, OPTIMIZERS, GPTConfig, muon_missing
from monitor import (
    Interrupt,
    TrainingError,
    WandbLogger,
    check_ranks_in_sync,
    git_commit,
    warn_if_slow,
    warn_if_untrained,
)


@dataclass
class TrainConfig:
    # I/O
    out_dir: str = "out"  # where ckpt.pt (best val loss), last.pt and the run's log go
    eval_interval: int = 2000  # evaluate (and checkpoint) every this many iterations
    log_interval: int = 1  # print the training loss every this many iterations
    eval_iters: int = 200  # batches per split in each evaluation
    eval_only: bool = False  # evaluate the checkpoint in out_dir and exit (with init_from=resume)
    eval_whole_split: bool = False  # each evaluation also gives the loss over the whole val split (bench time_to_loss)
    always_save_checkpoint: bool = True  # save ckpt.pt at every evaluation, not only when val loss improves
    init_from: str = "scratch"  # 'scratch' or 'resume' (from out_dir/ckpt.pt)
    # wandb
    wandb_log: bool = False  # log to Weights & Biases (WANDB_MODE=offline works without an account)
    wandb_project: str = "minrnn"  # the wandb project
    wandb_run_name: str = "run"  # the wandb run's name
    # data
    dataset: str = "shakespeare_char"  # a folder of data/, or 'selective_copying' (generated on the fly)
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    batch_size: int = 12  # sequences per micro-batch
    copy_seq_len: int = 256  # selective copying: context length L (block_size must be >= L + copy_n_data)
    copy_n_data: int = 8  # selective copying: data tokens to copy
    # sequence length warmup: the training windows grow linearly from seq_warmup_start tokens to block_size over the
    # first seq_warmup_iters iterations (0: off), and there are more of them while they are short, so that every
    # iteration holds batch_size * block_size tokens. What lets the GPT learn at block_size 512 on the CPU budget
    seq_warmup_iters: int = 0  # grow the training windows over this many iterations (0: off; see above)
    seq_warmup_start: int = 64  # the sequence length warmup's first window length
    # the optimizer: AdamW, or Muon on the blocks' weight matrices and AdamW on the rest (GPT.configure_optimizers)
    optimizer: str = "adamw"  # "adamw" | "muon"
    learning_rate: float = 6e-4  # the peak learning rate (Muon's too: its updates are scaled to AdamW's RMS)
    adamw_lr_scale: float = 1.0  # optimizer=muon: the AdamW part's rate (embeddings, lm_head, gains) x learning_rate
    max_iters: int = 5000  # training iterations (optimizer steps)
    weight_decay: float = 1e-1  # decoupled, on matrices and embeddings only
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.95  # AdamW's second-moment decay
    grad_clip: float = 1.0  # 0 disables clipping
    # learning rate schedule: linear warmup, then down to min_lr at lr_decay_iters
    decay_lr: bool = True  # False: a constant learning_rate
    schedule: str = "cosine"  # "cosine" decay after the warmup | "wsd": constant, then a linear cooldown at the end
    cooldown_frac: float = 0.2  # wsd: the last fraction of lr_decay_iters spent cooling down to min_lr
    warmup_iters: int = 100  # linear warmup from 0 to learning_rate
    lr_decay_iters: int = 5000  # the decay ends here (usually max_iters)
    min_lr: float = 6e-5  # the learning rate after the decay (learning_rate / 10)
    # system
    backend: str = "auto"  # DDP backend: auto (nccl on cuda, gloo otherwise), nccl or gloo
    device: str = "auto"  # auto, cpu, cuda, cuda:N or mps
    dtype: str = "auto"  # auto (bfloat16 where supported, else float32), float32, bfloat16 or float16
    compile: bool | str = "auto"  # auto: torch.compile on CUDA (measured faster there), not elsewhere
    seed: int = 1337  # seeds the weights, the batches and dropout
    cpu_recipe: str | None = None  # without a GPU, run this config instead (the GPU configs name their CPU recipe)

    def __post_init__(self):
        for key in ("eval_interval", "log_interval", "eval_iters", "gradient_accumulation_steps", "batch_size",
                    "copy_seq_len", "copy_n_data"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1 (got {getattr(self, key)})")
        for key in ("max_iters", "warmup_iters", "lr_decay_iters", "seq_warmup_iters"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (got {getattr(self, key)})")
        if self.seq_warmup_iters and not 1 <= self.seq_warmup_start <= self.block_size:
            raise ConfigError(f"seq_warmup_start must be in [1, block_size={self.block_size}] "
                              f"(got {self.seq_warmup_start})")
        if self.seq_warmup_iters and self.dataset == "selective_copying":
            raise ConfigError("seq_warmup_iters does not apply to selective copying (its sequences have a fixed "
                              "length); set it to 0")
        if self.dataset == "selective_copying" and self.block_size < self.copy_seq_len + self.copy_n_data:
            raise ConfigError(f"selective copying needs block_size >= copy_seq_len + copy_n_data = "
                              f"{self.copy_seq_len + self.copy_n_data} (got block_size={self.block_size})")
        if self.learning_rate <= 0 or self.min_lr < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("learning_rate must be > 0, and min_lr, grad_clip and weight_decay >= 0")
        if self.adamw_lr_scale <= 0:
            raise ConfigError(f"adamw_lr_scale must be > 0 (got {self.adamw_lr_scale})")
        if self.adamw_lr_scale != 1.0 and self.optimizer != "muon":
            raise ConfigError("adamw_lr_scale scales the AdamW part of optimizer=muon; with optimizer=adamw every "
                              "parameter takes learning_rate, so set that instead")
        if not 0.0 < self.cooldown_frac <= 1.0:
            raise ConfigError(f"cooldown_frac must be in (0, 1] (got {self.cooldown_frac})")
        choices = {"init_from": ("scratch", "resume"), "backend": ("auto", "nccl", "gloo"),
                   "optimizer": OPTIMIZERS, "schedule": ("cosine", "wsd"),
                   "dtype": ("auto", "float32", "bfloat16", "float16"), "compile": ("auto", True, False)}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"{key} must be one of {', '.join(map(str, valid))} (got {getattr(self, key)!r})")
        if self.optimizer == "muon" and muon_missing():  # PyTorch < 2.9: say so here, not inside the optimizer setup
            raise ConfigError(muon_missing())


# every model field is a training key too, with GPTConfig's defaults; vocab_size None means "from the dataset"
Config = dataclasses.make_dataclass(
    "Config", [(f.name, f.type, f.default) for f in dataclasses.fields(GPTConfig) if f.name != "vocab_size"]
    + [("vocab_size", int | None, None)], bases=(TrainConfig,), namespace={"help_from": (GPTConfig,)})
MODEL_KEYS = [f.name for f in dataclasses.fields(GPTConfig)]


def get_lr(it, c):
    if not c.decay_lr:
        return c.learning_rate
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if it > c.lr_decay_iters:
        return c.min_lr
    if c.schedule == "wsd":  # warmup-stable-decay (Hu et al. 2024, MiniCPM): flat, then linear to min_lr
        start = c.lr_decay_iters * (1 - c.cooldown_frac)
        ratio = min(1.0, max(0.0, (it - start) / max(1, c.lr_decay_iters - start)))
        return c.learning_rate - ratio * (c.learning_rate - c.min_lr)
    ratio = (it - c.warmup_iters) / max(1, c.lr_decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


def train_shape(it, c):
    """(windows, tokens per window) of iteration it's (micro) batch: (batch_size, block_size), or shorter and more
    windows during the sequence length warmup (the length rounded down to a multiple of 8, never below
    seq_warmup_start; as many windows as fit in batch_size * block_size tokens)."""
    if it >= c.seq_warmup_iters:
        return c.batch_size, c.block_size
    grown = c.seq_warmup_start + (c.block_size - c.seq_warmup_start) * it // c.seq_warmup_iters
    length = max(c.seq_warmup_start, grown // 8 * 8)
    return c.batch_size * c.block_size // length, length


def join_devices(c):
    """(ddp, device, rank, world size). Under torchrun this joins the process group and splits
    gradient_accumulation_steps over the ranks; 'auto' compile and dtype become the device's choice."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    if ddp:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}" if torch.cuda.is_available() else "cpu"
        backend = c.backend if c.backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
        init_process_group(backend=backend)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        if c.gradient_accumulation_steps % world:
            raise ConfigError(f"gradient_accumulation_steps ({c.gradient_accumulation_steps}) must be divisible "
                              f"by the number of processes ({world})")
        c.gradient_accumulation_steps //= world
    else:
        device, rank, world = resolve_device(c.device), 0, 1
    device_type = device.split(":")[0]
    if c.compile == "auto":
        c.compile = device_type == "cuda"
    if c.dtype == "auto":
        c.dtype = "bfloat16" if device_type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return ddp, device, rank, world


def load_batches(c, device, master, ddp):
    """(batches, the model's args): the dataset (prepared first by rank 0 where it can be) and the model config
    its vocabulary asks for."""
    if c.dataset == "selective_copying":
        from data.selective_copying.task import VOCAB_SIZE, CopyingBatches
        batches = CopyingBatches(c.batch_size, c.copy_seq_len, c.copy_n_data, device)
        vocab_size = VOCAB_SIZE
    else:
        if master:
            prepare_dataset(c.dataset)
        if ddp:
            torch.distributed.barrier()
        meta = load_meta(c.dataset)
        vocab_size = meta["vocab_size"] if meta else 50304  # GPT-2's 50257, padded to a multiple of 64
        batches = Batches(c.dataset, c.block_size, c.batch_size, device)
    model_args = {k: getattr(c, k) for k in MODEL_KEYS}
    model_args["vocab_size"] = c.vocab_size or vocab_size
    if model_args["vocab_size"] < vocab_size:
        raise ConfigError(f"vocab_size={model_args['vocab_size']} is smaller than the dataset's {vocab_size}")
    return batches, model_args


def build(c, model_args, device):
    """(model, optimizers, grad scaler, iteration, best val loss): new ones, or with init_from=resume the latest
    checkpoint in out_dir, which must hold the same model config and optimizer."""
    iter_num, best_val_loss, ckpt = 0, 1e9, None
    if c.init_from == "resume":
        resume_path, ckpt = latest_checkpoint(c.out_dir, map_location=device)
        if ckpt is None:
            raise CheckpointError(f"no checkpoint to resume from in {c.out_dir} (ckpt.pt or last.pt); train one "
                                  f"first (init_from=scratch) or check --out_dir")
        # keys added after a checkpoint was written take their defaults, which is what that model was
        ckpt["model_args"] = {**{f.name: f.default for f in dataclasses.fields(GPTConfig)}, **ckpt["model_args"]}
        if ckpt["model_args"] != model_args:
            diff = {k: (ckpt["model_args"].get(k), v) for k, v in model_args.items() if ckpt["model_args"].get(k) != v}
            raise ConfigError(f"{resume_path} was trained with a different model config: " + ", ".join(
                f"{k}={old!r} there, {new!r} here" for k, (old, new) in diff.items()) + "; drop those overrides")
        iter_num, best_val_loss = ckpt["iter_num"], ckpt["best_val_loss"]
    try:
        gpt_config = GPTConfig(**model_args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    model = GPT(gpt_config).to(device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    device_type = device.split(":")[0]
    scaler = torch.amp.GradScaler(device_type, enabled=c.dtype == "float16")
    optimizers = model.configure_optimizers(c.optimizer, c.weight_decay, c.learning_rate, (c.beta1, c.beta2),
                                            device_type)
    if ckpt is not None:
        states = ckpt["optimizer"] if isinstance(ckpt["optimizer"], list) else [ckpt["optimizer"]]  # older: one
        if len(states) != len(optimizers):
            raise ConfigError(f"the checkpoint in {c.out_dir} was trained with another optimizer (it holds "
                              f"{len(states)} optimizer states, optimizer={c.optimizer!r} needs {len(optimizers)}); "
                              f"resume with the optimizer it was trained with")
        for optimizer, state in zip(optimizers, states):
            optimizer.load_state_dict(state)
        scaler.load_state_dict(ckpt["scaler"])
        print(f"resuming from {resume_path} at iteration {iter_num}")
    return model, optimizers, scaler, iter_num, best_val_loss


@torch.no_grad()
def estimate_loss(model, eval_model, batches, c, ctx, progress):
    """{split: mean loss} over eval_iters batches of train and val, the same batches every time (and each split's
    answer accuracy on selective copying). model is put in eval mode; eval_model (its compiled form) runs."""
    model.eval()
    eval_gen = torch.Generator().manual_seed(c.seed + 10_000)
    out = {}
    for split in ("train", "val"):
        losses, accs = torch.zeros(c.eval_iters), torch.zeros(c.eval_iters)
        for k in tqdm(range(c.eval_iters), desc=f"eval {split}", disable=not progress, leave=False):
            x, y = batches.get(split, eval_gen)
            with ctx:
                logits, loss = eval_model(x, y)
            losses[k] = loss.item()
            if c.dataset == "selective_copying":
                from data.selective_copying.task import answer_accuracy
                accs[k] = answer_accuracy(logits, y)
        out[split] = losses.mean().item()
        if c.dataset == "selective_copying":
            out[f"{split}_acc"] = accs.mean().item()
    model.train()
    return out


def train(c, config_files=()):
    ddp, device, rank, world = join_devices(c)
    master, device_type = rank == 0, device.split(":")[0]
    ctx = autocast_context(device, c.dtype)
    torch.manual_seed(c.seed + rank)
    batch_gen = torch.Generator()  # reseeded at every iteration from (seed, rank, iteration), in the loop
    batches, model_args = load_batches(c, device, master, ddp)
    model, optimizers, scaler, iter_num, best_val_loss = build(c, model_args, device)
    # optimizers[0] is AdamW: with Muon its rate is adamw_lr_scale times the schedule's (1 otherwise, checked above)
    lr_scales = [c.adamw_lr_scale] + [1.0] * (len(optimizers) - 1)
    # ckpt.pt: the best val loss, or the latest state with always_save_checkpoint. last.pt: the state at a Ctrl-C
    # when ckpt.pt keeps the best, so that stopping never overwrites the best model. Resume and sample.py read the
    # later of the two (common.latest_checkpoint)
    ckpt_path, last_path = os.path.join(c.out_dir, "ckpt.pt"), os.path.join(c.out_dir, "last.pt")
    raw_model = eval_model = model  # eval_model: the compiled model when compiling, never the DDP wrapper
    if c.compile:
        print("compiling the model...")
        model = eval_model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[int(device.split(":")[1])] if device_type == "cuda" else None)

    def save(reason, path=ckpt_path):
        save_checkpoint(path, {
            "model": raw_model.state_dict(), "optimizer": [o.state_dict() for o in optimizers],
            "scaler": scaler.state_dict(),
            "model_args": model_args, "config": dataclasses.asdict(c), "iter_num": iter_num,
            "best_val_loss": best_val_loss, "dataset": c.dataset,
        })
        log(f"saved checkpoint to {path} ({reason})")

    interactive = master and sys.stdout.isatty() and not os.environ.get("CI")
    bar = tqdm(total=c.max_iters, initial=iter_num, disable=not interactive, dynamic_ncols=True, desc="train")
    log = bar.write if interactive else print
    wandb = WandbLogger(c) if c.wandb_log and master else None
    interrupt = Interrupt()
    try:  # the Ctrl-C handler is put back however the run ends
        if master:
            log(f"config: {dataclasses.asdict(c)}")
            log(f"torch {torch.__version__}, git commit {git_commit()}, device {device}, dtype {c.dtype}, "
                f"world size {world}")
            if n := remove_stale_temp_files(c.out_dir):
                log(f"removed {n} half-written checkpoint file(s) that an earlier, killed save left in {c.out_dir}")
            if device_type == "cpu" and not c.eval_only and iter_num < c.max_iters:
                warn_if_slow(raw_model, batches, ctx, c, iter_num, log, config_files)
        start_iter = iter_num
        t0, running_mfu, last_loss = time.time(), -1.0, None
        train_seconds = 0.0  # wall time spent in training iterations in this process, evaluations and saves left out
        # no host sync per iteration: a non-finite loss is recorded on the device, as the first iteration it
        # happened at, and looked at only where the host waits anyway (log lines) or before anything is saved
        nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)

        def check_finite():
            if (at := int(nonfinite_at)) >= 0:
                raise FloatingPointError(f"the training loss became non-finite at iteration {at}; lower "
                                         f"learning_rate or use dtype=float32. The checkpoint in {c.out_dir} (if "
                                         f"any) is the last good one")

        def seeds(it):
            """(torch seed, batch seed) of iteration it. Every random stream of an iteration (batches, dropout)
            follows from (seed, rank, iteration) alone, so a resumed run draws on every rank exactly what the
            uninterrupted one would have, with no RNG state to save."""
            return [int(s) for s in np.random.SeedSequence([c.seed, rank, it]).generate_state(2)]

        def first_batch(it):
            batch_gen.manual_seed(seeds(it)[1])
            n, length = train_shape(it, c)
            return batches.get("train", batch_gen, length, n)

        whole = None  # (iteration, whole-split val loss, tokens) of the last eval_whole_split evaluation

        x, y = first_batch(iter_num)
        first_iteration = True
        while True:
            lr = get_lr(iter_num, c)
            for optimizer, scale in zip(optimizers, lr_scales):
                for group in optimizer.param_groups:
                    group["lr"] = lr * scale
            if (iter_num % c.eval_interval == 0 or iter_num == c.max_iters) and master:
                check_finite()
                res = estimate_loss(model, eval_model, batches, c, ctx, interactive)
                acc = f", val acc {res['val_acc']:.4f}" if "val_acc" in res else ""
                log(f"step {iter_num}: train loss {res['train']:.4f}, val loss {res['val']:.4f}{acc}")
                if wandb:
                    wandb.log({"iter": iter_num, "train/loss": res["train"], "val/loss": res["val"], "lr": lr,
                               **({"mfu": running_mfu * 100} if running_mfu >= 0 else {})})
                if not math.isfinite(res["val"]):
                    raise FloatingPointError(f"val loss is {res['val']} at iteration {iter_num}")
                if c.eval_whole_split and c.dataset != "selective_copying":
                    whole = (iter_num, *split_loss(eval_model, batches, "val", ctx=ctx, progress=interactive))
                    log(f"step {iter_num}: whole val split loss {whole[1]:.4f} after {train_seconds:.2f} s of training")
                if res["val"] < best_val_loss or c.always_save_checkpoint:
                    best_val_loss = min(best_val_loss, res["val"])
                    if iter_num > start_iter:  # a checkpoint of what is already on disk would be a waste
                        save(f"iteration {iter_num}")
                t0 = time.time()  # the next iteration's time leaves the evaluation out
            if c.eval_only or iter_num >= c.max_iters:
                break
            stop = interrupt.requested
            if ddp:  # every rank stops at the same iteration
                flag = torch.tensor(float(stop), device=device)
                torch.distributed.all_reduce(flag)
                stop = bool(flag.item())
            if stop:
                check_finite()
                if master:
                    save(f"interrupted at iteration {iter_num}; init_from=resume continues from it",
                         ckpt_path if c.always_save_checkpoint else last_path)
                break

            torch.manual_seed(seeds(iter_num)[0])
            for micro_step in range(c.gradient_accumulation_steps):
                if ddp:  # sync gradients on the last micro step only
                    model.require_backward_grad_sync = micro_step == c.gradient_accumulation_steps - 1
                with ctx:
                    _, loss = model(x, y)
                    loss = loss / c.gradient_accumulation_steps
                # the next batch is read while a GPU runs this one's forward
                last = micro_step == c.gradient_accumulation_steps - 1
                x, y = first_batch(iter_num + 1) if last else batches.get("train", batch_gen, x.size(1), x.size(0))
                nonfinite_at = torch.where((nonfinite_at < 0) & ~torch.isfinite(loss.detach()), iter_num,
                                           nonfinite_at)
                scaler.scale(loss).backward()
            if first_iteration and master:
                warn_if_untrained(raw_model, log)
                first_iteration = False
            if c.grad_clip != 0.0:
                for optimizer in optimizers:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            for optimizer in optimizers:
                scaler.step(optimizer)
            scaler.update()
            model.zero_grad(set_to_none=True)

            t1 = time.time()
            dt, t0 = t1 - t0, t1
            train_seconds += dt
            iter_num += 1
            bar.update(1)
            if iter_num % c.log_interval == 0 and master:
                check_finite()
                last_loss = loss.item() * c.gradient_accumulation_steps
                mfu = raw_model.estimate_mfu(c.batch_size * c.gradient_accumulation_steps, dt)
                if mfu is not None:
                    running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
                tokens_per_iter = c.gradient_accumulation_steps * world * math.prod(train_shape(iter_num - 1, c))
                stats = {"loss": f"{last_loss:.4f}", "ms/iter": f"{dt * 1000:.0f}",
                         "tok/s": f"{tokens_per_iter / dt:,.0f}"}
                if mfu is not None:
                    stats["mfu"] = f"{running_mfu * 100:.1f}%"
                if interactive:
                    bar.set_postfix(stats, refresh=False)
                else:
                    print(f"iter {iter_num}: " + ", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
        bar.close()
        if master and not interrupt.requested:  # the run finished
            if os.path.exists(last_path):
                os.remove(last_path)  # an interrupted state from before it is stale
            if c.dataset != "selective_copying":  # every position of val (and test), not eval_iters batches
                losses = whole_split_losses(eval_model, batches, iter_num, log, ctx, interactive,
                                            known={"val": whole[1:]} if whole and whole[0] == iter_num else None)
                if wandb:
                    wandb.log({"iter": iter_num, **{f"{s}/loss_whole_split": v for s, (v, _) in losses.items()}})
    finally:
        interrupt.close()
    if wandb:
        wandb.finish()
    if ddp:
        check_ranks_in_sync(raw_model)  # main() leaves the process group
    return last_loss


def main(argv=None):
    try:
        argv = sys.argv[1:] if argv is None else argv
        c = parse_config(Config, argv)
        config_files = [a for a in argv if not a.startswith("-")]
        if c.cpu_recipe and resolve_device(c.device) == "cpu" and int(os.environ.get("RANK", -1)) == -1:
            print(f"no GPU here: {', '.join(config_files) or 'this config'} is sized for one (hours to days on a "
                  f"CPU), so this runs its CPU recipe, {c.cpu_recipe}, a few minutes (the overrides given still "
                  f"apply). For the GPU budget on this CPU anyway: --cpu_recipe=None", flush=True)
            config_files = [c.cpu_recipe]
            c = parse_config(Config, [c.cpu_recipe, *(a for a in argv if a.startswith("--")), "--cpu_recipe=None"])
        train(c, config_files)
    except (ConfigError, CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (FloatingPointError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        # a rank that fails leaves the group at once, however it failed, instead of waiting in the collectives of
        # process-group teardown at exit (which can hang under NCCL); torchrun then stops the other ranks. Before
        # that, the DDP wrapper (kept alive by reference cycles, and holding the group) is collected: left to the
        # interpreter's exit, the group's worker threads can be destroyed while still running (std::terminate)
        if torch.distributed.is_initialized():
            gc.collect()
            destroy_process_group()


if __name__ == "__main__":
    main()
