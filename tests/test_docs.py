"""The README's and docs/'s relative links lead somewhere: every linked file exists and every ``#anchor`` names a
heading (GitHub's slug) or an explicit anchor in the linked page. Runs on a fresh clone (git-tracked files only)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, hyphens and spaces kept),
    spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    out, seen = set(), {}
    for line in page.read_text().splitlines():
        if m := re.match(r"#{1,6} (.*)", line):
            s = slug(m.group(1))
            out.add(f"{s}-{seen[s]}" if s in seen else s)  # GitHub numbers repeated headings -1, -2, ...
            seen[s] = seen.get(s, 0) + 1
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return out


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_slug_is_githubs():
    assert slug("The rollout engine — (`make bench`; 2 cores)") == "the-rollout-engine--make-bench-2-cores"
    assert slug("Each group's prompt once (measured 2026-11-27)") == "each-groups-prompt-once-measured-2026-11-27"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    bad = []
    for target in links(page):
        path, _, frag = target.partition("#")
        dest = (page.parent / path) if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{target}: no heading or anchor #{frag} in {dest.name}")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)
