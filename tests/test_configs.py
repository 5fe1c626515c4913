"""Every shipped config parses, and each budget's mixers are matched in parameter count."""
import glob
import os

import pytest
from conftest import ROOT

import train
from configurator import parse_config
from model import GPT, GPTConfig

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "config", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_parses_and_builds_a_model(path):
    c = parse_config(train.Config, [path])
    GPTConfig(**{k: getattr(c, k) for k in train.MODEL_KEYS if k != "vocab_size"}, vocab_size=65)


@pytest.mark.parametrize("budget", ["shakespeare_char_cpu", "shakespeare_char"])
def test_each_budgets_mixers_have_the_same_parameter_count(budget):
    counts = {}
    for name in ("gpt", "mingru", "minlstm", "mamba", "gpt_nanogpt"):
        path = os.path.join(ROOT, "config", f"{budget}_{name}.py")
        if os.path.exists(path):
            c = parse_config(train.Config, [path])
            model_args = {k: getattr(c, k) for k in train.MODEL_KEYS if k != "vocab_size"}
            counts[name] = GPT(GPTConfig(**model_args, vocab_size=65)).get_num_params()
    assert {"gpt", "mingru", "minlstm", "mamba"} <= counts.keys()
    assert max(counts.values()) <= 1.02 * min(counts.values()), counts


# what a budget sets for itself: its size, its length of training, its rates and where it runs; the rest (the mixer's
# design and the optimizer the search chose) the baby config takes from its CPU recipe
BUDGET_KEYS = {"out_dir", "eval_interval", "eval_iters", "log_interval", "gradient_accumulation_steps", "batch_size",
               "block_size", "n_layer", "n_head", "n_embd", "dropout", "expansion", "learning_rate", "weight_decay",
               "max_iters", "lr_decay_iters", "min_lr", "warmup_iters", "device", "dtype", "compile", "cpu_recipe"}


@pytest.mark.parametrize("mixer", ["gpt", "mingru", "minlstm", "mamba"])
def test_each_baby_config_keeps_its_cpu_recipes_design(mixer):
    cpu = parse_config(train.Config, [os.path.join(ROOT, "config", f"shakespeare_char_cpu_{mixer}.py")])
    baby = parse_config(train.Config, [os.path.join(ROOT, "config", f"shakespeare_char_{mixer}.py")])
    differ = {k: (getattr(cpu, k), getattr(baby, k)) for k in vars(cpu) if getattr(cpu, k) != getattr(baby, k)}
    assert differ.keys() <= BUDGET_KEYS, {k: v for k, v in differ.items() if k not in BUDGET_KEYS}
