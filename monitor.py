"""
What watches a training run from beside the loop: the code version it logs, wandb, Ctrl-C, a warning before a run
that will take long on a CPU, one for parameters that get no gradient, and the check that DDP's ranks stayed in
sync. train.py calls these; none of them changes what trains.
"""
import dataclasses
import os
import signal
import subprocess
import time

import torch


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class WandbLogger:
    """wandb, offline unless a key is configured; any wandb failure turns it off with a warning, never a crash."""

    def __init__(self, c):
        self.run = None
        try:
            import wandb
            mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            self.run = wandb.init(project=c.wandb_project, name=c.wandb_run_name, config=dataclasses.asdict(c),
                                  mode=mode)
        except Exception as e:
            print(f"warning: wandb disabled ({type(e).__name__}: {e})")

    def log(self, data):
        if self.run is not None:
            try:
                self.run.log(data)
            except Exception as e:
                print(f"warning: wandb logging failed, disabling it ({type(e).__name__}: {e})")
                self.run = None

    def finish(self):
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as e:
                print(f"warning: wandb finish failed ({type(e).__name__}: {e})")


class Interrupt:
    """The first Ctrl-C asks the loop to save and stop at the next iteration boundary; a second one kills."""

    def __init__(self):
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handle)

    def close(self):
        signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: saving a checkpoint at the end of this iteration (Ctrl-C again to quit now)")




SLOW_RUN_SECONDS = 15 * 60


def warn_if_untrained(model, log):
    """After the first backward: name every parameter that requires a gradient and got none. Nothing trains it: an
    edit to model.py added it but the computation never reads it (or a path that runs bypasses it)."""
    idle = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if idle:
        log(f"warning: {len(idle)} parameter(s) got no gradient in the first backward and will not train: "
            f"{', '.join(idle)}")


def warn_if_slow(model, batches, ctx, c, iter_num, log, config_files=()):
    """On a CPU, time a few training steps before the first evaluation (which, at a GPU config's eval_iters, runs
    minutes before the first line), and say how long the run will take when that is long. The loop reseeds every
    random stream at each iteration, so these steps change nothing that follows."""
    x, y = batches.get("train", torch.Generator().manual_seed(0))
    times, t_end = [], time.time() + 10  # at most ~10 s of timing, however slow a step is
    while len(times) < 6 and (len(times) < 2 or time.time() < t_end):
        t0 = time.time()
        with ctx:
            _, loss = model(x, y)
        loss.backward()
        times.append(time.time() - t0)
    model.zero_grad(set_to_none=True)
    times = sorted(times[1:])  # the first step is slower (allocations)
    step = times[len(times) // 2] * c.gradient_accumulation_steps * 1.1  # the median, + the optimizer
    evals = (c.max_iters - iter_num) // c.eval_interval + 1
    total = step * (c.max_iters - iter_num) + evals * 2 * c.eval_iters * step / 3  # an eval batch: forward only
    if total > SLOW_RUN_SECONDS:
        cpu_config = f"config/shakespeare_char_cpu_{ {'attn': 'gpt'}.get(c.mixer, c.mixer)}.py"
        running_it = any(os.path.abspath(f) == os.path.abspath(cpu_config) for f in config_files)
        advice = "lower max_iters or eval_iters for a shorter run" if running_it or c.dataset != "shakespeare_char" \
            else f"for a run of minutes, try {cpu_config}"
        log(f"note: on this CPU the run will take about {total / 3600:.1f} h ({step * 1000:.0f} ms per iteration, "
            f"the median of {len(times)} timed steps; {c.max_iters - iter_num} iterations, {evals} evaluations of "
            f"{2 * c.eval_iters} batches); {advice}")


class TrainingError(RuntimeError):
    """A run that went wrong in a way the user must hear about (the message says what and where)."""


def check_ranks_in_sync(model):
    """DDP keeps every rank's weights identical by averaging gradients; ranks that drifted apart trained separate
    models, and the checkpoint (rank 0's) would be one of them. Compare a few sums of the weights across ranks."""
    flat = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    stats = torch.stack([flat.sum(), flat.square().sum(), flat.abs().sum()]).to(flat.device)
    low, high = stats.clone(), stats.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if not torch.allclose(low, high, rtol=1e-9, atol=0):
        raise TrainingError(f"the DDP ranks' weights differ after training (weight sums from {low.tolist()} to "
                            f"{high.tolist()}): gradients were not synchronised")
