# Character-level Shakespeare with nanoGPT's baby-GPT budget, mixer: mingru. Sized for a GPU (~minutes on an A100).
# python train.py config/shakespeare_char_mingru.py
out_dir = "out-shakespeare-char-mingru"
cpu_recipe = "config/shakespeare_char_cpu_mingru.py"  # runs instead without a GPU (--cpu_recipe=None: this one)
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
mixer = "mingru"
expansion = 4 / 3  # matches the GPT's 12*C^2 per block: 3*alpha*C^2 (gates, candidate, out) + 8*C^2 (MLP)
init = "torch"  # the CPU recipe's winner (docs/results.md, "The recipe")
tie_embeddings = False  # the CPU search's winner (docs/results.md, "The equal-effort search"), unmeasured here
activation = "relu2"  # the CPU search's winner, as tie_embeddings
conv = 4  # the CPU recipe's causal depthwise conv over the last 4 inputs, as the other RNNs' configs

optimizer = "muon"  # the CPU search's winner (docs/results.md, "The equal-effort search"), not measured at this size
learning_rate = 1e-3  # nanoGPT's: the CPU recipe's 3e-3 (no weight decay) was measured on a 13x smaller model only
max_iters = 5000
lr_decay_iters = 5000  # usually max_iters
min_lr = 1e-4  # learning_rate / 10
beta2 = 0.99  # a little larger, since there are few tokens per iteration
warmup_iters = 100
