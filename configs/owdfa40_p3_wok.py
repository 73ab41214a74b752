"""OWDFA-40, protocol 3, unknown number of novel classes: 10 prototypes per
known class until the end of epoch posthoc_epoch, when the post-hoc estimate of
K sets the novel ones (the default; docs/choosing_k.md). The paper's Table 2
rule, Dynamic Prototype Pruning every epoch: novel_k_source=dpp."""
from configs.base import *  # noqa: F401,F403

experiment = "owdfa40_p3_wok"
protocol = 3
unknown_k = True
