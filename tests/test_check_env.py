"""scripts/check_env.py accepts compatible installs: local build tags, minimum versions."""
import sys
from importlib import metadata

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from check_env import unmet  # noqa: E402


def test_pins_minimums_and_build_tags(tmp_path):
    numpy, torch = metadata.version("numpy"), metadata.version("torch")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# comment\nnumpy=={numpy}\ntorch=={torch.split('+')[0]}\npytest>=1.0  # test-only\n")
    assert unmet(requirements) == []
    requirements.write_text("numpy==0.1\npytest>=999\nno-such-package==1\n")
    assert unmet(requirements) == [f"numpy {numpy} does not satisfy ==0.1", f"pytest {metadata.version('pytest')} "
                                   "does not satisfy >=999", "no-such-package missing"]
