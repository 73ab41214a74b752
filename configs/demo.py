"""CPU-sized CAL on the mini synthetic dataset (python -m dataset.synthetic).

Same method and protocol split rules as OWDFA-40, scaled down: small images,
ResNet-18 from scratch, budgets that fit the mini dataset, few epochs.
"""
from configs.base import *  # noqa: F401,F403

dataset_root = "data/mini"
protocol = 1
crop_face = False              # synthetic images are already "crops"; no dlib needed
image_size = 64
backbone = "resnet18"
pretrained = False             # no download on CPU-only demo machines
budget_real = 240
budget_known = 120
budget_novel = 120
epochs = 10
cal_pseudo_start = 2
lr_step = 8
lr = 1e-3
batch_size = 128
test_batch_size = 256
num_workers = 2
channels_last = False          # ResNet-18 at 64 px trains slower in NHWC on CPUs (docs/performance.md)
