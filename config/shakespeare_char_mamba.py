# Character-level Shakespeare with nanoGPT's baby-GPT budget, mixer: mamba. Sized for a GPU (~minutes on an A100).
# python train.py config/shakespeare_char_mamba.py
out_dir = "out-shakespeare-char-mamba"
cpu_recipe = "config/shakespeare_char_cpu_mamba.py"  # runs instead without a GPU (--cpu_recipe=None: this one)
eval_interval = 250  # frequent evals: this small model overfits
eval_iters = 200
log_interval = 10
always_save_checkpoint = False  # keep the best val loss only

dataset = "shakespeare_char"
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256  # 256 characters of context

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
mixer = "mamba"
expansion = 1.2  # hidden width 461: the block within 1% of the GPT's parameters (Delta's rank is C/16 = 24 here)
d_state = 16  # Mamba's N
conv = 4  # Mamba's own causal conv, on its x branch
init = "mamba"  # mamba_ssm's init
norm = "rmsnorm"  # the CPU search's winner (docs/results.md, "The equal-effort search"), not measured at this size

optimizer = "muon"  # the CPU search's winner, not measured at this size
learning_rate = 1e-3  # nanoGPT's; not tuned at this scale
max_iters = 5000
lr_decay_iters = 5000  # usually max_iters
min_lr = 1e-4  # learning_rate / 10
beta2 = 0.99  # a little larger, since there are few tokens per iteration
warmup_iters = 100
