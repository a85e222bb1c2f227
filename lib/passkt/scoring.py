"""Answer scoring: HotpotQA exact match / token F1, and MATH answer equivalence by value.

``score_answer`` runs once per sampled episode (hundreds of thousands of calls), so every regex is
compiled once at import and the pure normalisers are memoised.

HotpotQA: :func:`normalize_answer`, :func:`exact_match` and :func:`f1_score` follow the official
``hotpot_evaluate_v1.py`` (lowercase -> drop punctuation -> drop articles -> collapse whitespace; F1 is
0 whenever one side is yes/no/noanswer and the other differs), taking the max over gold + aliases.

Math: :func:`math_equal` compares numbers exactly by value (``fractions.Fraction``: integers, decimals,
``a/b``, ``\\frac{a}{b}``, thousands separators, signs) and everything else (``\\sqrt``, ``\\pi``,
intervals, expressions) as normalised LaTeX strings. Tuples/lists are compared element-wise.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from fractions import Fraction
from functools import lru_cache

# ---------------------------------------------------------------------------------------------- HotpotQA

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_YES_NO = ("yes", "no", "noanswer")


@lru_cache(maxsize=1 << 16)
def normalize_answer(s: str) -> str:
    """HotpotQA's official normalisation: lowercase, remove punctuation, articles, extra whitespace."""
    s = s.lower().translate(_PUNCT_TABLE)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _f1_one(pred: str, gold: str) -> float:
    """Token F1 of one prediction against one gold string, as in hotpot_evaluate_v1.f1_score."""
    p, g = normalize_answer(pred), normalize_answer(gold)
    if (p in _YES_NO or g in _YES_NO) and p != g:
        return 0.0
    pt, gt = p.split(), g.split()
    same = sum((Counter(pt) & Counter(gt)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pt), same / len(gt)
    return 2 * precision * recall / (precision + recall)


def _golds(gold: str, aliases) -> tuple[str, ...]:
    if isinstance(aliases, str):
        raise TypeError(f"aliases should be a list of str, got the str {aliases!r}")
    return (gold, *aliases)


def exact_match(pred: str | None, gold: str, aliases=()) -> bool:
    """True if the normalised prediction equals the normalised gold answer or any alias."""
    if pred is None:
        return False
    p = normalize_answer(pred)
    return any(p == normalize_answer(g) for g in _golds(gold, aliases))


def f1_score(pred: str | None, gold: str, aliases=()) -> float:
    """HotpotQA token F1 (with its yes/no/noanswer rule), maximised over gold + aliases."""
    if pred is None:
        return 0.0
    return max(_f1_one(pred, g) for g in _golds(gold, aliases))


# -------------------------------------------------------------------------------------------------- math

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_DOLLARS = re.compile(r"^\$+|\$+$")
_DELIMS = re.compile(r"^\\[\(\[]|\\[\)\]]$")
_SPACING = re.compile(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\[!,;:> ]|~")
_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf)\s*\{([^{}]*)\}")
_DFRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_ESC_DOLLAR = re.compile(r"\\\$")
_UNITS = re.compile(r"\\?%$|\^\s*\{?\\circ\}?$")
_ASSIGN = re.compile(r"^[a-zA-Z]\w?\s*=\s*(?=\S)")
_SPACES = re.compile(r"\s+")
_SQRT_SHORT = re.compile(r"\\sqrt ?(\w)")
_FRAC_SHORT = re.compile(r"\\frac ?(\d)(\d)")
_SPACE_NOT_BETWEEN_WORDS = re.compile(r"(?<=\W) | (?=\W)")

_INT_OR_DEC = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_SLASH = re.compile(r"([-+]?)(\d+)/(\d+)")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)"
_FRAC = re.compile(rf"([-+]?)\\frac\{{({_NUM})\}}\{{({_NUM})\}}")


def extract_boxed(s: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``s``, nested braces kept; None if absent
    or unbalanced."""
    starts = [m.end() for m in _BOXED.finditer(s)]
    if not starts:
        return None
    i = starts[-1]
    depth = 1
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i:j]
    return None


@lru_cache(maxsize=1 << 16)
def normalize_math(s: str) -> str:
    """Canonical LaTeX string of an answer: unbox, strip ``$``/``\\(``, ``\\left``/``\\right``, thin spaces,
    ``\\text{}`` wrappers, ``%``/degree marks, a leading ``x =``; ``\\dfrac`` -> ``\\frac``, ``\\frac12`` ->
    ``\\frac{1}{2}``, ``\\sqrt2`` -> ``\\sqrt{2}``; spaces kept only between two word characters (so
    ``\\pi r`` stays distinct from ``\\pir``)."""
    boxed = extract_boxed(s)
    if boxed is not None:
        s = boxed
    s = _ESC_DOLLAR.sub("", s.replace("\u2212", "-")).strip()
    s = _DOLLARS.sub("", s).strip()
    s = _DELIMS.sub("", s).strip()
    s = _SPACING.sub(" ", s)
    s = _TEXT.sub(r"\1", s)
    s = _DFRAC.sub(r"\\frac", s)
    s = s.replace("{,}", ",")
    s = _SPACES.sub(" ", s).strip()
    s = _UNITS.sub("", s).strip()
    s = _ASSIGN.sub("", s) if s.count("=") == 1 else s
    s = _SPACE_NOT_BETWEEN_WORDS.sub("", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", _SQRT_SHORT.sub(r"\\sqrt{\1}", s))
    return s.rstrip(".") if not _INT_OR_DEC.fullmatch(s) else s


def _to_number(s: str) -> Fraction | None:
    """Exact value of a normalised answer that is a plain number or a numeric fraction, else None."""
    if _INT_OR_DEC.fullmatch(s):
        return Fraction(s)
    if _THOUSANDS.fullmatch(s):
        return Fraction(s.replace(",", ""))
    m = _SLASH.fullmatch(s)
    if m:
        sign, num, den = m.groups()
        return None if int(den) == 0 else Fraction(int(num), int(den)) * (-1 if sign == "-" else 1)
    m = _FRAC.fullmatch(s)
    if m:
        sign, num, den = m.group(1), Fraction(m.group(2)), Fraction(m.group(3))
        return None if den == 0 else num / den * (-1 if sign == "-" else 1)
    return None


def _split_top_level(s: str) -> list[str]:
    """Split on commas not nested inside braces/brackets/parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _equal_normalised(a: str, b: str) -> bool:
    if a == b:
        return True
    va, vb = _to_number(a), _to_number(b)
    if va is not None and vb is not None:
        return va == vb
    # tuples / intervals / lists: same brackets, same length, element-wise equal
    if len(a) >= 2 and len(b) >= 2 and a[0] + a[-1] == b[0] + b[-1] and a[0] in "([" and a[-1] in ")]":
        a, b = a[1:-1], b[1:-1]
    pa, pb = _split_top_level(a), _split_top_level(b)
    if len(pa) > 1 and len(pa) == len(pb):
        return all(_equal_normalised(x, y) for x, y in zip(pa, pb, strict=True))
    return False


def math_equal(pred: str | None, gold: str) -> bool:
    """True if ``pred`` and ``gold`` denote the same answer: equal numbers by value, else equal
    normalised strings (element-wise for tuples)."""
    if pred is None:
        return False
    a, b = normalize_math(pred), normalize_math(gold)
    return bool(a) and _equal_normalised(a, b)


# ------------------------------------------------------------------------------------------- dispatcher


def score_answer(pred: str | None, problem: dict) -> dict:
    """Score one episode's final answer against a schema problem: ``{"correct": bool, "f1": float}``.

    Math problems use :func:`math_equal` (f1 is 1.0 or 0.0); others HotpotQA EM / F1 over answer + aliases.
    A missing answer (``None``) is incorrect with f1 0.
    """
    if pred is not None and not isinstance(pred, str):
        raise TypeError(f"pred should be str or None, got {type(pred).__name__}")
    gold, aliases = problem["answer"], problem.get("aliases", ())
    if problem["category"] == "math":
        ok = any(math_equal(pred, g) for g in _golds(gold, aliases))
        return {"correct": ok, "f1": 1.0 if ok else 0.0}
    return {"correct": exact_match(pred, gold, aliases), "f1": f1_score(pred, gold, aliases)}
