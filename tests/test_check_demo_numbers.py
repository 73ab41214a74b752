"""scripts/check_demo_numbers.py: the demo's last printed table against README's
Quick start block (parsing and comparison on small strings; the real demo is
not run here: `python scripts/check_demo_numbers.py --run`)."""
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_demo_numbers as check  # noqa: E402

TRAINING_END = """epoch 9 done
           all   known   novel
   ACC    39.0    76.1    45.0
   NMI    61.0    75.0    57.0
   ARI    30.0    60.0    31.0
  conf    70.0    75.0    65.0
"""
TEST_PY = """== evaluation of exp/demo/x/checkpoints/last.pt ==
exp/demo/x/checkpoints/last.pt: epoch 9, OWDFA-40 protocol 1, 1008 test images, 41 valid prototypes
           all   known   novel
   ACC    38.6    75.8    45.5
   NMI    61.3    75.2    57.4
   ARI    29.9    60.1     n/a
  conf    69.8    74.9    64.6
discovery: 61.2 % of novel test images on a novel prototype, 3.1 % of known ones; 20 of 22 novel prototypes hold a test image
run directory: exp/demo/x (metrics.jsonl, curves.png, log.txt, checkpoints/)
"""
DISCOVERY = ("discovery: 61.2 % of novel test images on a novel prototype, 3.1 % of known ones; 20 of 22 novel "
             "prototypes hold a test image")
PRINTED = {"ACC": ("38.6", "75.8", "45.5"), "NMI": ("61.3", "75.2", "57.4"), "ARI": ("29.9", "60.1", "n/a"),
           "conf": ("69.8", "74.9", "64.6")}


def readme(block: str, lead: str = "On 2 CPU cores the demo prints:") -> str:
    return f"# Title\n\nSome text\n\n```\n   ACC    1.0    2.0    3.0\n```\n\n{lead}\n\n```\n{block}```\n\nMore.\n"


def test_the_last_table_of_the_log_is_test_pys():
    assert check.printed_table(TRAINING_END + "\r50%|###|\r100%|####|\n" + TEST_PY) == PRINTED


def test_an_incomplete_or_shuffled_table_is_not_a_table():
    assert check.tables("   ACC 1 2 3\n   NMI 1 2 3\n   ARI 1 2 3\n") == []
    assert check.tables("   NMI 1 2 3\n   ACC 1 2 3\n   NMI 1 2 3\n   ARI 1 2 3\n  conf 1 2 3\n") == [
        {"ACC": ("1", "2", "3"), "NMI": ("1", "2", "3"), "ARI": ("1", "2", "3"), "conf": ("1", "2", "3")}]
    with pytest.raises(check.TableError, match="no metrics table"):
        check.printed_table("training failed\n")


def test_readmes_block_is_the_one_after_prints():
    block = check.format_block(PRINTED) + "\n"
    assert check.tables(check.readme_block(readme(block)))[0] == PRINTED
    assert check.tables(check.readme_block(readme(block).replace("prints:\n\n```", "prints:\n```")))[0] == PRINTED
    with pytest.raises(check.TableError, match='"prints"'):
        check.readme_block(readme(block).replace("prints:\n\n", "prints:\n\nA paragraph between.\n\n"))
    with pytest.raises(check.TableError, match='"prints"'):
        check.readme_block(readme(block, lead="On 2 CPU cores the demo shows:"))


def test_the_shipped_readme_has_a_block_the_check_finds():
    block = check.readme_block((REPO / "README.md").read_text())
    table = check.tables(block)[0]
    assert set(table) == set(check.ROWS) and all(len(values) == 3 for values in table.values())
    assert check.discovery(block), "README's demo block shows the discovery line"


def test_differences_name_the_rows_that_differ():
    changed = {**PRINTED, "NMI": ("64.1", "79.6", "60.7")}
    assert check.differences(PRINTED, PRINTED) == []
    (line,) = check.differences(changed, PRINTED)
    assert line.split()[:5] == ["NMI", "README", "64.1", "79.6", "60.7"] and line.split()[-3:] == ["61.3", "75.2",
                                                                                                  "57.4"]


def test_exit_status_and_the_block_to_paste(tmp_path, capsys):
    log = tmp_path / "demo.log"
    log.write_text(TRAINING_END + TEST_PY)
    same, other = tmp_path / "same.md", tmp_path / "other.md"
    same.write_text(readme(check.format_block(PRINTED) + f"\n{DISCOVERY}\n"))
    other.write_text(readme(check.format_block({**PRINTED, "ACC": ("40.2", "79.4", "47.3")}) + f"\n{DISCOVERY}\n"))
    undiscovered = tmp_path / "undiscovered.md"
    undiscovered.write_text(readme(check.format_block(PRINTED) + "\n" + DISCOVERY.replace("61.2", "0.0") + "\n"))
    assert check.main([str(log), "--readme", str(same)]) == 0
    capsys.readouterr()
    assert check.main([str(log), "--readme", str(other)]) == 1
    out = capsys.readouterr().out
    assert "ACC   README 40.2  79.4  47.3" in out and "NMI   README" not in out
    assert check.format_block(PRINTED) in out
    assert check.main([str(log), "--readme", str(undiscovered)]) == 1
    assert "README discovery: 0.0 %" in capsys.readouterr().out
    assert check.main([str(tmp_path / "missing.log"), "--readme", str(same)]) == 2
    empty = tmp_path / "empty.log"
    empty.write_text("no table\n")
    assert check.main([str(empty), "--readme", str(same)]) == 2
