# Character-level Shakespeare with nanoGPT's baby-GPT budget, mixer: attn. Sized for a GPU (~minutes on an A100).
# python train.py config/shakespeare_char_gpt.py
out_dir = "out-shakespeare-char-gpt"
cpu_recipe = "config/shakespeare_char_cpu_gpt.py"  # runs instead without a GPU (--cpu_recipe=None: this one)
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
mixer = "attn"

pos = "rope"  # the CPU search's winner (docs/results.md, "The equal-effort search"), not measured at this size
optimizer = "muon"  # the CPU search's winner (docs/results.md, "The equal-effort search"), not measured at this size
learning_rate = 1e-3  # small networks can take a larger learning rate
max_iters = 5000
lr_decay_iters = 5000  # usually max_iters
min_lr = 1e-4  # learning_rate / 10
beta2 = 0.99  # a little larger, since there are few tokens per iteration
warmup_iters = 100
