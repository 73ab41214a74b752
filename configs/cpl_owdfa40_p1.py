"""CPL on OWDFA-40, protocol 1, with its release's recipe (docs/baselines.md)."""
from configs.base import *  # noqa: F401,F403

method = "cpl"
protocol = 1
weight_decay = 1e-5            # Adam lr 2e-4 (the base default), 50 epochs, batch 128, 256 px as in base.py
lr_gamma = 0.2                 # StepLR(10, 0.2)
