# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: mamba (Gu & Dao 2023), the
# paper's fourth model, in the same nanoGPT block as the others (norm, mixer, residual, norm, MLP, residual), at its
# best recipe (the equal-effort search, python -m experiments.search; docs/results.md).
# python train.py config/shakespeare_char_cpu_mamba.py
out_dir = "out-shakespeare-char-cpu-mamba"
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
mixer = "mamba"
expansion = 1.125  # hidden width 144: ~4*C^2 weights in the mixer, as attention's, with the 8*C^2 MLP beside it
d_state = 16  # Mamba's N
conv = 4  # Mamba's own causal conv, on its x branch
init = "mamba"  # mamba_ssm's: PyTorch's default Linears, N(0, 0.02) embedding, scaled residual projections
norm = "rmsnorm"  # as mamba_ssm's blocks: level with LayerNorm here (1.5542 against 1.5554 at seed 0, the search)

optimizer = "muon"  # Muon on the blocks' matrices, AdamW on the rest: 0.06 below AdamW here (the search)
learning_rate = 3e-3
weight_decay = 0.0
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
