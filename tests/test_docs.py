"""docs/tutorial.md: every command in it runs and succeeds (its output is what `make docs`
wrote under it, from the same commands); every claim of the allocator story has its section;
the README links to it, and the pictures it shows exist."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("goruntime_tools_mkdocs", ROOT / "tools" / "mkdocs.py")
mkdocs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mkdocs)
TEXT = mkdocs.TUTORIAL.read_text()
COMMANDS = mkdocs.commands(TEXT)


def test_every_claim_has_a_section_and_a_command():
    for claim in ("lock-free from the P's mcache", "refills from the mcentral", "grows from the mheap",
                  "over 32 KiB come straight from the mheap", "67 size classes, 134 span classes",
                  "tiny allocator", "sweep puts spans back on nonempty", "Lock-free against locked",
                  "Exercises"):
        assert re.search(rf"^## \d+\. .*{re.escape(claim)}", TEXT, re.M | re.I), claim
    sections = re.split(r"^## ", TEXT, flags=re.M)[1:9]
    assert all("<!-- run -->" in s for s in sections)
    assert len(COMMANDS) >= 8


def test_the_readme_links_the_tutorial_and_the_pictures_exist():
    assert "docs/tutorial.md" in (ROOT / "README.md").read_text()
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", TEXT):
        assert (ROOT / "docs" / picture).is_file(), picture


@pytest.mark.parametrize("command", COMMANDS)
def test_tutorial_command_runs(command):
    code, out = mkdocs.run(command)
    assert code == 0, out
    # The output written in the tutorial came from this command: same first line.
    written = TEXT.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    assert out.splitlines()[0].split(":")[0] == written.splitlines()[0].split(":")[0]
