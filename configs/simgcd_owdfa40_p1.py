"""SimGCD on OWDFA-40, protocol 1, on CAL's ResNet-50 + BNNeck and its Adam/StepLR recipe
(docs/baselines.md: the release's ViT, SGD and cosine schedule are not reproduced)."""
from configs.base import *  # noqa: F401,F403

method = "simgcd"
protocol = 1
