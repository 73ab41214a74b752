"""Method name -> method class: the one place that knows every method, used by
training, evaluation, prediction and export to build the method of a config."""
from __future__ import annotations

from models.cal import CAL
from models.cpl import CPL
from models.simgcd import SimGCD
from utils.config import ConfigError

METHODS = {"cal": CAL, "cpl": CPL, "simgcd": SimGCD}


def create_method(cfg, num_known: int, num_classes: int):
    """The method object ``cfg.method`` names, on the CPU, freshly initialised."""
    try:
        cls = METHODS[cfg.method]
    except KeyError:
        raise ConfigError(f"method={cfg.method!r} is not a method of this code; valid: "
                          f"{', '.join(METHODS)}") from None
    return cls(cfg, num_known, num_classes)
