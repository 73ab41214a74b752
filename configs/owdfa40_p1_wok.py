"""OWDFA-40, protocol 1, unknown number of novel classes: 10 prototypes per
known class, shrunk by Dynamic Prototype Pruning at the end of every epoch."""
from configs.base import *  # noqa: F401,F403

experiment = "owdfa40_p1_wok"
protocol = 1
unknown_k = True
