# nanoGPT's own CPU recipe for its Shakespeare GPT, exactly: the baseline that the other CPU configs are compared
# against (`python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
# --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
# --lr_decay_iters=2000 --dropout=0.0` in nanoGPT). config/shakespeare_char_cpu_gpt.py is the GPT at its best recipe.
# python train.py config/shakespeare_char_cpu_gpt_nanogpt.py
out_dir = "out-shakespeare-char-cpu-gpt-nanogpt"
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
init = "gpt2"  # N(0, 0.02), residual projections scaled by 1/sqrt(2 * n_layer)
norm = "layernorm"
bias = True

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100

device = "cpu"
dtype = "float32"
compile = False
