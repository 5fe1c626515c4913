# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: minlstm, at its best recipe
# (python -m experiments.recipe, then the equal-effort search, python -m experiments.search; docs/results.md).
# python train.py config/shakespeare_char_cpu_minlstm.py
out_dir = "out-shakespeare-char-cpu-minlstm"
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
mixer = "minlstm"
init = "torch"  # PyTorch's default init: gates start spread out; nanoGPT's N(0, 0.02) costs 0.11 nats here
tie_embeddings = False  # an output matrix of its own, the embedding at nn.Embedding's N(0, 1): ~0.03 nats here
conv = 4  # a causal depthwise conv over the last 4 inputs before the mixer
expansion = 1.0  # matches the GPT's 12*C^2 per block: 4*alpha*C^2 (two gates, candidate, out) + 8*C^2 (MLP)

optimizer = "muon"  # Muon on the blocks' matrices, AdamW on the rest: 0.04 below AdamW here (the search)
learning_rate = 3e-3  # Muon's best of 1.5e-3, 3e-3 and 6e-3 (with AdamW, 3e-3 too)
weight_decay = 0.1  # on the matrices and embeddings: 0.006 below none with Muon, three seeds (the search's stage 5)
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
