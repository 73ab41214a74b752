"""Method name -> method class: the one place that knows every method, used by
training, evaluation, prediction and export to build the method of a config."""
from __future__ import annotations

from models.cal import CAL
from models.cpl import CPL
from models.simgcd import SimGCD
from utils.config import ConfigError

METHODS = {"cal": CAL, "cpl": CPL, "simgcd": SimGCD}


def method_class(cfg):
    """The class of the method ``cfg.method`` names."""
    try:
        return METHODS[cfg.method]
    except KeyError:
        raise ConfigError(f"method={cfg.method!r} is not a method of this code; valid: "
                          f"{', '.join(METHODS)}") from None


def create_method(cfg, num_known: int, num_classes: int):
    """The method object of ``cfg``, on the CPU, freshly initialised."""
    return method_class(cfg)(cfg, num_known, num_classes)


def create_network(cfg, num_known: int, num_classes: int):
    """The network alone of the method of ``cfg`` (e.g. on the meta device, to check weights)."""
    return method_class(cfg).network(cfg, num_known, num_classes)
