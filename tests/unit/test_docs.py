"""The documents stand on their own: generated tables are fresh, links resolve, and nothing in
the repository refers to files outside it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.support import docgen

ROOT: Final = docgen.ROOT
DOCUMENTS: Final = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIPPED_DIRS: Final = frozenset(
    {".git", ".venv", ".cache", "target", "__pycache__", ".mypy_cache", ".ruff_cache"}
)
# Files outside this test's owner that still name the design note; each goes when its owner
# rewrites the line (then delete its entry here: the test says so).
PENDING: Final = frozenset(
    {"sidecar/vigie/state/thresholds.py", "tests/e2e/test_classes_replay.py"}
)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)


@pytest.mark.parametrize("name", sorted(docgen.BLOCKS))
def test_generated_documents_are_fresh(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    assert docgen.render(name, text) == text, f"{name} is stale: run make docs"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(h) for h in _HEADING.findall(path.read_text(encoding="utf-8"))}


def _links(path: Path) -> Iterator[tuple[int, str]]:
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            for target in _LINK.findall(line):
                yield number, target


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(doc: Path) -> None:
    broken = []
    for number, target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        where = f"{doc.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _repository_files() -> Iterator[Path]:
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(top, name)
            if path != Path(__file__) and path.is_file():
                yield path


def test_nothing_refers_to_files_outside_the_repository() -> None:
    """No file names the design note or the folder beside the repository, except tests that
    read ``../shared/conformance`` as test data (and skip without it)."""
    design, shared = b"DESIGN" + b".md", b"../" + b"shared"
    found: dict[str, list[str]] = {}
    for path in _repository_files():
        data = path.read_bytes()
        if design not in data and shared not in data:
            continue
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(data.splitlines(), 1):
            # the conformance data is read by tests only: the Python tests, the handler's tests,
            # the pom property that hands its path to them, and the handler README saying so
            test_data = b"shared/conformance" in line and (
                rel.startswith("tests/")
                or "/src/test/" in rel
                or rel in ("gateway-handler/pom.xml", "gateway-handler/README.md")
            )
            if design in line or (shared in line and not test_data):
                found.setdefault(rel, []).append(f"{rel}:{number}")
    unexpected = [hit for rel, hits in found.items() if rel not in PENDING for hit in hits]
    assert not unexpected, "refers to files outside the repository:\n" + "\n".join(unexpected)
    done = sorted(PENDING - set(found))
    assert not done, f"no longer refers outside the repository, remove from PENDING: {done}"


def test_a_document_without_its_markers_is_named() -> None:
    with pytest.raises(docgen.DocgenError, match=r"^docs/metrics.md: the lines .* are missing"):
        docgen.render("docs/metrics.md", "# Metrics\n")
