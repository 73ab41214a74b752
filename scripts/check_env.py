"""Exit 0 when this interpreter already has every pin of requirements.txt
(local build tags such as +cu130 ignored), else 1 listing what differs."""
import sys
from importlib import metadata
from pathlib import Path


def unmet(requirements: Path) -> list[str]:
    problems = []
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, wanted = line.partition("==")
        try:
            have = metadata.version(name.strip())
        except metadata.PackageNotFoundError:
            problems.append(f"{name} missing")
            continue
        if wanted and have.split("+")[0] != wanted.strip():
            problems.append(f"{name} {have} != {wanted}")
    return problems


if __name__ == "__main__":
    missing = unmet(Path(__file__).resolve().parent.parent / "requirements.txt")
    if missing and "-v" in sys.argv:
        print("environment lacks: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1 if missing else 0)
