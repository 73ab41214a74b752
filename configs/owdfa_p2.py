"""OW-DFA (the CPL benchmark), protocol 2: protocol 1 plus two real classes,
Youtube-Real (known, 15,000 labelled + 5,000 unlabelled) and Celeb-Real (novel,
5,000): 22 classes, 9 known and 13 novel (docs/data.md).
"""
import os

from configs.base import *  # noqa: F401,F403

classes_file = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dataset",
                                             "owdfa_p2_classes.csv"))
protocol = 2
