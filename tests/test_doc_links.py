"""Every docs/ file that the code or the README names exists, so a renamed or regenerated report leaves no
pointer to a file that is gone."""

import re
from pathlib import Path

from conftest import REPO_ROOT

DOC_REFERENCE = re.compile(r"docs/[\w.-]+\.(?:md|png)\b")
CODE_DIRECTORIES = ("app", "scorers", "search_spaces")


def _texts_naming_docs() -> list[Path]:
    code = [path for directory in CODE_DIRECTORIES for path in sorted((REPO_ROOT / directory).rglob("*.py"))]
    return [REPO_ROOT / "README.md", *code]


def test_every_docs_file_named_in_the_code_and_readme_exists() -> None:
    named = {
        (path.relative_to(REPO_ROOT).as_posix(), reference)
        for path in _texts_naming_docs()
        for reference in DOC_REFERENCE.findall(path.read_text(encoding="utf-8"))
    }
    assert any(path == "scorers/presets.py" for path, _ in named)
    assert sorted((path, ref) for path, ref in named if not (REPO_ROOT / ref).is_file()) == []
