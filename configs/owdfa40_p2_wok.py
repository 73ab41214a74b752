"""OWDFA-40, protocol 2, unknown number of novel classes: 10 prototypes per
known class until the end of epoch cal_seed_epoch, when the post-hoc estimate
of K sets the novel ones (docs/choosing_k.md). The paper's Table 2 rule,
Dynamic Prototype Pruning every epoch: cal_novel_prototypes=paper."""
from configs.base import *  # noqa: F401,F403

protocol = 2
unknown_k = True
