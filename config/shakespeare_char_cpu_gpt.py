# The CPU recipe: character-level Shakespeare in a few minutes on a laptop CPU, mixer: attn, at its best recipe
# (python -m experiments.recipe): nanoGPT's, with a 3x higher learning rate. nanoGPT's exact recipe is
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

learning_rate = 3e-3  # nanoGPT's 1e-3 is far from the best on this budget (README, "The recipe")
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4  # as nanoGPT's, and as the ablation measured it
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
