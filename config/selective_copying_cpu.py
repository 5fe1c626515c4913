# Selective copying on a CPU: sequence length 64, 8 tokens to copy, the paper's layer shape (width 64, expansion 6,
# no MLP, no conv) with 2 layers.
# python train.py config/selective_copying_cpu.py [--mixer=minlstm] [--n_layer=3]
out_dir = "out-selective-copying-cpu"
dataset = "selective_copying"
copy_seq_len = 64
copy_n_data = 8
block_size = 72  # copy_seq_len + copy_n_data

mixer = "mingru"
n_layer = 2
n_embd = 64
expansion = 6.0
mlp = False
conv = 0
dropout = 0.0
bias = False

batch_size = 32
learning_rate = 3e-3
weight_decay = 0.0
max_iters = 3000
lr_decay_iters = 3000
min_lr = 3e-4
warmup_iters = 50
grad_clip = 1.0
eval_interval = 250
eval_iters = 10
log_interval = 50
always_save_checkpoint = False
device = "cpu"
dtype = "float32"
