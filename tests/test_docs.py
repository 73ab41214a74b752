"""README.md is a front page (at most 300 lines) and docs/ holds the depth: every
relative link of both resolves to a file of the repository, neither speaks of
tickets, commit hashes or sessions (history lives in git), and every config key
is in docs/configuration.md."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PROCESS = re.compile(r"issue|session|[0-9a-f]{7}\b|before →|before \(")


def broken_links(page: Path) -> list[str]:
    """The relative link targets of ``page`` that name no existing file."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = target.split("#")[0]
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


def process_lines(text: str) -> list[str]:
    """Lines that speak of tickets, hashes or sessions (URLs left out)."""
    return [line for line in text.splitlines() if PROCESS.search(re.sub(r"https?://\S+", "", line))]


def test_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 300


def test_every_relative_link_resolves():
    broken = [f"{page.relative_to(REPO)}: {target}" for page in PAGES for target in broken_links(page)]
    assert not broken, "\n".join(broken)


def test_no_process_language():
    found = [f"{page.relative_to(REPO)}: {line}" for page in PAGES for line in process_lines(page.read_text())]
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_look_for(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](missing.md) [b](p.md#x) [c](https://example.org/x) [d](#y)\n")
    assert broken_links(page) == ["missing.md"]
    assert process_lines("fixed in issue 12\nsee https://hub/abcdef1234\nthe rule before (x)\nplain") == \
        ["fixed in issue 12", "the rule before (x)"]


def test_every_config_key_is_documented():
    from utils.config import defaults
    from models.method import METHODS

    page = (REPO / "docs" / "configuration.md").read_text()
    keys = {key for method in METHODS for key in defaults(method)}
    missing = sorted(key for key in keys if f"`{key}`" not in page)
    assert not missing, f"config keys missing from docs/configuration.md: {missing}"


def prose_sentences(text: str) -> set[str]:
    """Sentences of at least 8 words outside code blocks and tables, whitespace-normalised."""
    prose, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and not line.lstrip().startswith("|"):
            prose.append(line)
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(" ".join(prose).split()))
    return {s for s in sentences if len(s.split()) >= 8}


def test_no_sentence_is_repeated_between_readme_and_docs():
    readme = prose_sentences((REPO / "README.md").read_text())
    repeated = [f"{page.name}: {s}" for page in PAGES[1:] for s in readme & prose_sentences(page.read_text())]
    assert not repeated, "README repeats docs/ word for word (keep it in one place):\n" + "\n".join(repeated)


def test_the_first_command_is_on_the_first_screen():
    lines = (REPO / "README.md").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("bash scripts/demo.sh"))
    assert first < 40, f"README's first command is at line {first + 1}"
    assert "not run yet" not in "\n".join(lines)
