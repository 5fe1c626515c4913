"""bench.py throughput: training tokens/s of each mixer at a recipe's shapes, compile (and on CUDA bf16) off and on."""
import torch

from benchmarks.common import interleaved_medians, print_table, save

RECIPES = {"cpu": "config/shakespeare_char_cpu_{}.py", "baby": "config/shakespeare_char_{}.py"}


def bench_throughput(args):
    """Every (mixer, setting) built first, then timed in rounds, one step of each per round: the machine's drift
    during the run falls on all of them alike, so the ratios between them hold even where the ms do not."""
    import scan as scan_module
    import train
    from configurator import parse_config
    from kernels import build
    from model import GPT, GPTConfig
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    # (compile, dtype, scan backend or None for the default): on CUDA eager float32, eager bf16 and compiled bf16 (the
    # baby configs' dtype=auto); on the CPU eager and compiled, and for the RNNs eager with C_KERNELS=0 too
    # (scan "ops": model.py's definitions as PyTorch ops and the chunked scan, instead of cpu.c's kernels)
    variants = [(False, "float32", None), (False, "bfloat16", None), (True, "bfloat16", None)] if device == "cuda" \
        else [(False, "float32", None), (True, "float32", None)]
    original, original_c = scan_module.DEFAULT_BACKEND, build.USE_C
    entries = []  # (row, model, step function)
    for mixer in args.mixers:
        c = parse_config(train.Config, [RECIPES[args.recipe].format(mixer)])
        B, T = c.batch_size, args.block_size or c.block_size
        model_keys = {k: getattr(c, k) for k in train.MODEL_KEYS if k != "vocab_size"}
        cfg = GPTConfig(**{**model_keys, "block_size": T}, vocab_size=65)
        default = scan_module.default_backend(device, T)
        extra = [(False, "float32", "ops")] if device == "cpu" and mixer != "gpt" else []
        for compiled, dtype, backend in variants + extra:
            torch.manual_seed(0)
            raw = GPT(cfg).to(device)
            model = torch.compile(raw) if compiled else raw
            opts = raw.configure_optimizers(c.optimizer, c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device)
            x = torch.randint(0, 65, (B, T), device=device)
            autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

            def step(model=model, opts=opts, x=x, autocast=autocast, backend=backend or original):
                # the setting's scan and cells, while it runs
                scan_module.DEFAULT_BACKEND, build.USE_C = (original, False) if backend == "ops" else \
                    (backend, original_c)
                with autocast:
                    _, loss = model(x, x)
                loss.backward()
                for opt in opts:
                    opt.step()
                model.zero_grad(set_to_none=True)
            # what runs the recurrence: cpu.c on an eager CPU (the checked cells, or Mamba's c scan), the chunked
            # scan's PyTorch ops with C_KERNELS=0 and under torch.compile (a ctypes call would break the graph)
            c_runs = device == "cpu" and not compiled and original_c and build.library(torch.float32) is not None
            if device == "cpu" and original is None:
                default = "c" if c_runs else "chunked"
            scan = "" if mixer == "gpt" else "chunked, C_KERNELS=0" if backend == "ops" else \
                "cpu.c cell" if c_runs and mixer != "mamba" else "cpu.c selective scan" if c_runs else \
                backend or default
            row = {"mixer": cfg.mixer, "compile": compiled, "dtype": dtype, "scan": scan, "B": B, "T": T,
                   "optimizer": c.optimizer, "device": device}
            try:
                for _ in range(3 if args.quick else 5):  # warm-up, and compilation
                    step()
                entries.append((row, raw, step))
            except Exception as e:  # torch.compile needs a working compiler toolchain; report, don't crash
                print(f"{mixer} compile={compiled}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            finally:  # the next setting's label and default see the run's own settings, not this step's
                scan_module.DEFAULT_BACKEND, build.USE_C = original, original_c
    repeats = args.repeats or (5 if args.quick else 50)
    medians = interleaved_medians({i: step for i, (_, _, step) in enumerate(entries)}, repeats=repeats,
                                  warmup=0)  # warmed up (and compiled) above
    scan_module.DEFAULT_BACKEND, build.USE_C = original, original_c
    rows, results = [], []
    for i, (row, raw, _) in enumerate(entries):
        seconds = medians[i]
        tok_s = row["B"] * row["T"] / seconds
        mfu = raw.estimate_mfu(row["B"], seconds)
        results.append({**row, "tokens_per_s": tok_s, "ms_per_iter": seconds * 1e3,
                        "tflops": raw.flops_per_token() * tok_s / 1e12, "mfu": mfu})
        rows.append([row["mixer"], row["optimizer"], row["compile"], row["dtype"], row["scan"],
                     f"{seconds * 1e3:.2f}", f"{tok_s:,.0f}",
                     f"{raw.flops_per_token() * tok_s / 1e9:.1f}", "n/a" if mfu is None else f"{mfu:.1%}"])
    T = results[0]["T"] if results else None
    print(f"training step (forward, backward, the config's optimizer) on {device}, the {args.recipe} configs' shapes "
          f"({RECIPES[args.recipe].format('*')}) at T={T}, {repeats} interleaved rounds; MFU only where the peak "
          f"FLOP/s is known")
    print_table(["mixer", "optimizer", "compile", "dtype", "scan", "ms/iter", "tokens/s", "GFLOP/s", "MFU"], rows)
    best = {m: min(r["ms_per_iter"] for r in results if r["mixer"] == m) for m in {r["mixer"] for r in results}}
    if "attn" in best:
        print("each mixer at its fastest setting, ms/iter against the GPT's: " +
              ", ".join(f"{m} {best[m] / best['attn']:.2f}x" for m in ("mingru", "minlstm", "mamba") if m in best))
    optimizers = optimizer_cost([(row, raw) for row, raw, _ in entries if not row["compile"]
                                 and row["dtype"] == "float32" and row["scan"] != "chunked, C_KERNELS=0"], repeats)
    name = "throughput" + ("" if args.recipe == "cpu" else f"_{args.recipe}") + \
        (f"_T{args.block_size}" if args.block_size else "")
    save(name, {"device": device, "recipe": args.recipe, "block_size": T, "repeats": repeats, "interleaved": True,
                "rows": results, "optimizer_rows": optimizers})


def optimizer_cost(models, repeats):
    """The optimizer step alone, AdamW against Muon (+ AdamW on the rest), on each model's own gradients: every
    (mixer, optimizer) timed in interleaved rounds, as the training steps are."""
    steps = {}
    for row, raw in models:
        x = torch.randint(0, 65, (row["B"], row["T"]), device=raw.lm_head.weight.device)
        raw.zero_grad(set_to_none=True)
        raw(x, x)[1].backward()  # gradients to step on; the steps below change the weights, never the gradients
        for name in ("adamw", "muon"):
            opts = raw.configure_optimizers(name, 0.1, 1e-4, (0.9, 0.99), row["device"])
            steps[row["mixer"], name] = lambda opts=opts: [opt.step() for opt in opts]
    medians = interleaved_medians(steps, repeats=repeats, warmup=2)
    rows = [{"mixer": mixer, "optimizer": name, "ms_per_step": seconds * 1e3}
            for (mixer, name), seconds in medians.items()]
    print("the optimizer step alone, on each model's gradients (eager float32):")
    print_table(["mixer", "optimizer", "ms/step"], [[r["mixer"], r["optimizer"], f"{r['ms_per_step']:.2f}"]
                                                    for r in rows])
    return rows
