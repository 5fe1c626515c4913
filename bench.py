"""
Benchmarks. Each prints a table and writes its numbers to bench_out/<name>.json, and a PNG where there is a plot.

    python bench.py scan [--quick]         forward+backward time of every scan backend, and its error vs float64
    python bench.py train_cost [--quick]   training step time and memory vs sequence length (the paper's Figure 1)
    python bench.py generate [--quick]     ms per token and state bytes vs tokens generated so far
    python bench.py state_loss --gpt DIR --rnn DIR [DIR ...] [--tokens N]   val loss vs state bytes: KV caches vs RNNs
    python bench.py throughput [--quick] [--recipe baby] [--block_size T]   training tokens/s, compile off and on
    python bench.py time_to_loss [--rounds N]   whole-split val loss against training seconds, CPU recipe, each mixer
    python bench.py length --rnn DIR [DIR ...] [--gpt DIR ...] [--tokens N]   val loss by position past training length
    python bench.py prepare [--size MB]   data/text/prepare.py's seconds and peak memory on a large text, vs before
    python bench.py replot NAME [NAME ...]   redraw bench_out/NAME.png from NAME.json (state_loss*, generate, length)

Timings are medians over repeats, taken in one run on one machine; speed-ups are ratios measured in that same run.
On CUDA the outputs are named bench_out/gpu_<name>.json (and .png), beside the CPU ones.
"""
import argparse
import json
import os

from benchmarks.generate import bench_generate
from benchmarks.length import bench_length
from benchmarks.prepare import bench_prepare
from benchmarks.scan_speed import bench_scan
from benchmarks.state_loss import bench_state_loss
from benchmarks.throughput import RECIPES, bench_throughput
from benchmarks.time_to_loss import bench_time_to_loss
from benchmarks.train_cost import bench_train_cost


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    p = sub.add_parser("scan", help="scan backends: speed and precision")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
    p.set_defaults(fn=bench_scan)
    for name, fn, help_text in [("train_cost", bench_train_cost, "training step time and memory vs length"),
                                ("generate", bench_generate, "ms per token and state bytes vs length"),
                                ("throughput", bench_throughput, "training tokens/s, compile off and on")]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
        p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
        p.set_defaults(fn=fn)
        if name == "throughput":
            p.add_argument("--recipe", choices=list(RECIPES), default="cpu",
                           help="the configs whose shapes to time: cpu (block 64) or baby (block 256, 6 layers)")
            p.add_argument("--block_size", type=int, help="time at this T instead of the configs' block_size "
                           "(writes throughput_T<T>.json)")
            p.add_argument("--repeats", type=int, help="interleaved rounds to time (default 50, --quick 5)")
            p.add_argument("--mixers", nargs="+", choices=["gpt", "mingru", "minlstm", "mamba"],
                           default=["gpt", "mingru", "minlstm", "mamba"], help="the configs to time")
    p = sub.add_parser("time_to_loss", help="val loss against training seconds, each mixer's CPU recipe")
    p.add_argument("--quick", action="store_true", help="200 iterations instead of 2000, for a smoke run")
    p.add_argument("--rounds", type=int, default=1, help="train every mixer this many times, the order reversed "
                   "each round, and average their seconds (the losses repeat exactly: the runs are seeded)")
    p.set_defaults(fn=bench_time_to_loss)
    p = sub.add_parser("state_loss", help="val loss vs state bytes: KV-cache policies and RNNs")
    p.add_argument("--gpt", required=True, help="out_dir of a trained GPT checkpoint")
    p.add_argument("--rnn", nargs="*", default=[], help="out_dirs of trained minGRU/minLSTM checkpoints")
    p.add_argument("--quick", action="store_true", help="fewer val windows")
    p.add_argument("--name", default="state_loss", help="output name: bench_out/NAME.json and .png")
    p.add_argument("--tokens", type=int, default=None,
                   help="window length (default: the GPT's block_size; past it, the GPT needs pos='rope')")
    p.set_defaults(fn=bench_state_loss)
    p = sub.add_parser("length", help="val loss by position past the training length: RNNs carry their state")
    p.add_argument("--rnn", nargs="*", default=[], help="out_dirs of trained RNN checkpoints")
    p.add_argument("--gpt", nargs="*", default=[],
                   help="out_dirs of trained GPT checkpoints: one pass for a RoPE GPT, and for every GPT a "
                   "sliding-window re-run, the baseline")
    p.add_argument("--tokens", type=int, default=4096, help="length of each val stretch (at least 2 block_size)")
    p.add_argument("--stride", type=int, help="tokens between stretch starts (default tokens/8: overlapping)")
    p.add_argument("--chunk", type=int, default=512, help="tokens per prefill call; the state carries across")
    p.set_defaults(fn=bench_length)
    p = sub.add_parser("prepare", help="data/text/prepare.py: seconds and peak RSS, characters and GPT-2 BPE")
    p.add_argument("--size", type=float, default=1000, help="MB of text (tiny Shakespeare repeated) to prepare")
    p.add_argument("--before_size", type=float, default=100,
                   help="MB of text for the comparison with the scripts' algorithm before data/text/prepare.py")
    p.set_defaults(fn=bench_prepare)
    p = sub.add_parser("replot", help="redraw plots from their JSON")
    p.add_argument("names", nargs="+", help="bench_out/NAME.json to draw: state_loss, state_loss_512, generate, length")
    p.set_defaults(fn=replot)
    args = parser.parse_args()
    args.fn(args)


def replot(args):
    from benchmarks import generate, length, state_loss
    for name in args.names:
        module = {"generate": generate, "length": length}.get(name.removeprefix("gpu_"), state_loss)
        path = os.path.join("bench_out", f"{name}.json")
        if not os.path.exists(path):
            raise SystemExit(f"error: no {path}; run the benchmark first")
        with open(path) as f:
            module.draw(name.removeprefix("gpu_") if module is generate else name, json.load(f))


if __name__ == "__main__":
    main()
