"""SimGCD on OWDFA-40, protocol 3 (docs/baselines.md)."""
from configs.simgcd_owdfa40_p1 import *  # noqa: F401,F403

protocol = 3
