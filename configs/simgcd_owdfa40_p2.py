"""SimGCD on OWDFA-40, protocol 2 (docs/baselines.md)."""
from configs.simgcd_owdfa40_p1 import *  # noqa: F401,F403

protocol = 2
