"""Networks and methods. Importing the package registers the built-in methods
(each registers itself where it is defined, models/method.py)."""
from models import cal, cpl, simgcd  # noqa: F401
