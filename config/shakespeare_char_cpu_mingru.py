# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: mingru, at its best recipe
# (python -m experiments.recipe, then the equal-effort search, python -m experiments.search; docs/results.md).
# python train.py config/shakespeare_char_cpu_mingru.py
out_dir = "out-shakespeare-char-cpu-mingru"
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
mixer = "mingru"
expansion = 4 / 3  # matches the GPT's 12*C^2 per block: 3*alpha*C^2 (gates, candidate, out) + 8*C^2 (MLP)
init = "torch"  # PyTorch's default init: gates start spread out; nanoGPT's N(0, 0.02) costs 0.09 nats here
tie_embeddings = False  # an output matrix of its own; with Muon tied and untied are level (the search)
activation = "relu2"  # a squared-ReLU MLP: level with GELU here, 1.5422 against tied GELU's 1.5427 (the search)
# (untied + relu2 were chosen at block 64: trained at 512 they score 0.013 worse than tied GELU; docs, Long context)
conv = 4  # a causal depthwise conv over the last 4 inputs before the mixer

optimizer = "muon"  # Muon on the blocks' matrices, AdamW on the rest: 0.05 below AdamW here (the search)
learning_rate = 6e-3  # Muon's best of 1.5e-3, 3e-3, 6e-3 and 1.2e-2 (AdamW's: 3e-3)
weight_decay = 0.0
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
