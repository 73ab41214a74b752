"""OWDFA-40, protocol 2, known number of novel classes (P = 41 prototypes)."""
from configs.base import *  # noqa: F401,F403

protocol = 2
