# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: attn, at its best recipe
# (python -m experiments.recipe, then the equal-effort search, python -m experiments.search; docs/results.md):
# nanoGPT's with Muon at 12x nanoGPT's learning rate and rotary positions. nanoGPT's exact recipe is
# config/shakespeare_char_cpu_gpt_nanogpt.py.
# python train.py config/shakespeare_char_cpu_gpt.py
out_dir = "out-shakespeare-char-cpu-gpt"
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = False

dataset = "shakespeare_char"
batch_size = 12
block_size = 64

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
mixer = "attn"
init = "gpt2"  # N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer); PyTorch's defaults are far worse here
norm = "layernorm"
bias = True

pos = "rope"  # rotary positions, no position table: 0.03 below learned ones here (the search), and no block_size cap
optimizer = "muon"  # Muon on the blocks' matrices, AdamW on the rest: 0.17 below AdamW here (the search)
learning_rate = 1.2e-2  # Muon's best of 1.5e-3 .. 2.4e-2 (AdamW's: 3e-3; nanoGPT's 1e-3 is far from either)
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4  # as nanoGPT's, and as the ablation measured it
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
