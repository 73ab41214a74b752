"""Exit 0 when this interpreter satisfies requirements.txt, else 1 (``-v``: list what differs).

A pin ``==X`` accepts X with any local build tag (torch 2.14.1+cu126 from another
CUDA wheel index satisfies torch==2.14.1); a minimum ``>=X`` (test-only tools)
accepts any later version.
"""
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version


def unmet(requirements: Path) -> list[str]:
    problems = []
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        wanted = Requirement(line)
        try:
            have = metadata.version(wanted.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{wanted.name} missing")
            continue
        if not wanted.specifier.contains(Version(have), prereleases=True):
            problems.append(f"{wanted.name} {have} does not satisfy {wanted.specifier}")
    return problems


if __name__ == "__main__":
    missing = unmet(Path(__file__).resolve().parent.parent / "requirements.txt")
    if missing and "-v" in sys.argv:
        print("environment lacks: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1 if missing else 0)
