"""CPL on OWDFA-40, protocol 3, with its release's recipe (docs/baselines.md)."""
from configs.cpl_owdfa40_p1 import *  # noqa: F401,F403

protocol = 3
