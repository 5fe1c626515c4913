"""bench.py throughput: training tokens/s of each mixer at a recipe's shapes, compile (and on CUDA bf16) off and on."""
import torch

from benchmarks.common import median_time, print_table, save

RECIPES = {"cpu": "config/shakespeare_char_cpu_{}.py", "baby": "config/shakespeare_char_{}.py"}


def bench_throughput(args):
    import scan as scan_module
    import train
    from configurator import parse_config
    from model import GPT, GPTConfig
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    # (compile, dtype, scan backend or None for the default): on CUDA eager float32, eager bf16 and compiled bf16 (the
    # baby configs' dtype=auto), and for the RNNs compiled bf16 on the log scan too
    variants = [(False, "float32", None), (False, "bfloat16", None), (True, "bfloat16", None)] if device == "cuda" \
        else [(False, "float32", None), (True, "float32", None)]
    rows, results, original = [], [], scan_module.DEFAULT_BACKEND
    for mixer in ("gpt", "mingru", "minlstm", "mamba"):
        c = parse_config(train.Config, [RECIPES[args.recipe].format(mixer)])
        cfg = GPTConfig(**{k: getattr(c, k) for k in train.MODEL_KEYS if k != "vocab_size"}, vocab_size=65)
        B, T = c.batch_size, c.block_size
        scan_module.DEFAULT_BACKEND = original
        default = scan_module.default_backend(device, T)
        extra = [(True, "bfloat16", "log")] if device == "cuda" and mixer != "gpt" and default != "log" else []
        for compiled, dtype, backend in variants + extra:
            scan_module.DEFAULT_BACKEND = backend or original
            torch.manual_seed(0)
            raw = GPT(cfg).to(device)
            model = torch.compile(raw) if compiled else raw
            opt = raw.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device)
            x = torch.randint(0, 65, (B, T), device=device)
            autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

            def step(model=model, opt=opt, x=x, autocast=autocast):
                with autocast:
                    _, loss = model(x, x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            try:
                seconds = median_time(step, repeats=5 if args.quick else 50, warmup=5)
            except Exception as e:  # torch.compile needs a working compiler toolchain; report, don't crash
                print(f"{mixer} compile={compiled}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                continue
            tok_s = B * T / seconds
            mfu = raw.estimate_mfu(B, seconds)
            backend = "" if mixer == "gpt" else backend or default
            results.append({"mixer": cfg.mixer, "compile": compiled, "dtype": dtype, "scan": backend,
                            "tokens_per_s": tok_s, "ms_per_iter": seconds * 1e3,
                            "tflops": raw.flops_per_token() * tok_s / 1e12, "mfu": mfu})
            rows.append([cfg.mixer, compiled, dtype, backend, f"{seconds * 1e3:.2f}", f"{tok_s:,.0f}",
                         f"{raw.flops_per_token() * tok_s / 1e9:.1f}", "n/a" if mfu is None else f"{mfu:.1%}"])
    print(f"training step (forward, backward, AdamW) on {device}, the {args.recipe} configs' shapes "
          f"({RECIPES[args.recipe].format('*')}); MFU only where the peak FLOP/s is known")
    scan_module.DEFAULT_BACKEND = original
    print_table(["mixer", "compile", "dtype", "scan", "ms/iter", "tokens/s", "GFLOP/s", "MFU"], rows)
    best = {m: min(r["ms_per_iter"] for r in results if r["mixer"] == m) for m in {r["mixer"] for r in results}}
    if "attn" in best:
        print("each mixer at its fastest setting, ms/iter against the GPT's: " +
              ", ".join(f"{m} {best[m] / best['attn']:.2f}x" for m in ("mingru", "minlstm", "mamba") if m in best))
    name = "throughput" if args.recipe == "cpu" else f"throughput_{args.recipe}"
    save(name, {"device": device, "recipe": args.recipe, "rows": results})
