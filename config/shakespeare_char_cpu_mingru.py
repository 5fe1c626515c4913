# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: mingru, at its best recipe
# (python -m experiments.recipe; README, "The recipe").
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
tie_embeddings = False  # an output matrix of its own, the embedding at nn.Embedding's N(0, 1): ~0.04 nats here
conv = 4  # a causal depthwise conv over the last 4 inputs before the mixer

learning_rate = 3e-3  # 1e-3 is clearly worse; with the conv and no weight decay, 3e-3 beats 2e-3 a little
weight_decay = 0.0
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
