# Selective copying as in Tables 1 and 2 of "Were RNNs All We Needed?": sequence length 4096, 16 tokens to copy,
# 3 layers of width 64 with expansion 6, no MLP, no conv. Sized for a GPU.
# python train.py config/selective_copying_paper.py --mixer=minlstm --n_layer=2
out_dir = "out-selective-copying"
dataset = "selective_copying"
copy_seq_len = 4096
copy_n_data = 16
block_size = 4112  # copy_seq_len + copy_n_data

mixer = "mingru"
n_layer = 3
n_embd = 64
expansion = 6.0
mlp = False
conv = 0
dropout = 0.0
bias = False

batch_size = 64
learning_rate = 3e-4
weight_decay = 0.0
max_iters = 400_000
lr_decay_iters = 400_000
min_lr = 3e-5
warmup_iters = 1000
grad_clip = 1.0
eval_interval = 2000
eval_iters = 20
log_interval = 100
always_save_checkpoint = False
