"""OW-DFA (the CPL benchmark), protocol 1: its 20 forgery methods, 8 known and 12 novel.

Per-class counts (1,500 labelled + 500 unlabelled per known method, 1,500 per
novel one, then 80/20 train/test) and the release's nested folder layout come
from the class table (docs/data.md).
"""
import os

from configs.base import *  # noqa: F401,F403

classes_file = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dataset",
                                             "owdfa_p1_classes.csv"))
protocol = 1
