"""The README's and docs/'s relative links lead somewhere: every linked file is tracked by git (so it exists on a
fresh clone and on GitHub; a link into a DVC output such as data/ fails here) and every ``#anchor`` names a heading
(GitHub's slug) or an explicit anchor in the linked page."""

import functools
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def tracked() -> set[Path] | None:
    """Files and folders git tracks (the folders holding tracked files); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = {ROOT / f for f in out.splitlines()}
    return files | {d for f in files for d in f.parents}


TRACKED = tracked()
# tools/mutate.py's copy of the repository is no git checkout and leaves docs/ and results/ behind
pytestmark = pytest.mark.skipif(TRACKED is None, reason="not a git checkout: the linked files are not all here")


def strip_code(text: str) -> str:
    """Markdown without its fenced code blocks (their lines are neither headings nor links)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, hyphens and spaces kept),
    spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache  # a page linked many times is read once
def anchors(page: Path) -> set[str]:
    out, seen = set(), {}
    for line in strip_code(page.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.*)", line):
            s = slug(m.group(1))
            out.add(f"{s}-{seen[s]}" if s in seen else s)  # GitHub numbers repeated headings -1, -2, ...
            seen[s] = seen.get(s, 0) + 1
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return out


def links(page: Path) -> list[str]:
    text = strip_code(page.read_text())
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_slug_is_githubs():
    assert slug("The rollout engine — (`make bench`; 2 cores)") == "the-rollout-engine--make-bench-2-cores"
    assert slug("Each group's prompt once (measured 2026-11-27)") == "each-groups-prompt-once-measured-2026-11-27"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    bad = []
    for target in links(page):
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif dest not in TRACKED:
            bad.append(f"{target}: not tracked by git (absent from a fresh clone)")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{target}: no heading or anchor #{frag} in {dest.name}")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)
