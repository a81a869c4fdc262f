"""The docs describe the code: the state diagram is the transition table, and every
link between the repository's documents leads somewhere."""

import re
from pathlib import Path

import pytest

from pipeline.states import INITIAL_STATES, TERMINAL_STATES, TRANSITIONS

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
_MOVE = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)\s*$")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def diagram_moves() -> set[tuple[str, str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    return {match.groups() for line in block.splitlines() if (match := _MOVE.match(line))}


def test_the_state_diagram_draws_exactly_the_transition_table():
    drawn = diagram_moves()
    table = {
        (source.value, target.value) for source in TRANSITIONS for target in TRANSITIONS[source]
    }
    ends = {(state.value, "[*]") for state in TERMINAL_STATES}
    starts = {("[*]", state.value) for state in INITIAL_STATES}
    assert drawn == table | ends | starts


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_links_between_documents_lead_to_files_in_the_repository(document):
    for target in _LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (document.parent / target).exists(), f"{document.name} links to {target}"
