"""The docs say only what is true: every interlace name they mention exists, and nothing that
exists is announced as planned or unavailable.

``test_docs`` runs the code blocks; this module reads the prose (inline code and text) of
docs/*.md and README.md:

* every dotted name ``interlace.x.y`` resolves (module attribute or importable module);
* every ``res.x`` / ``result.x`` names an attribute of a result class (LMM, GLMM, CLMM,
  Cox, chunked, MixedLM drop-in);
* a sentence that says something is planned, to come or not available names nothing that
  exists in interlace.
"""
from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest

import interlace
from interlace.results.clmm import CLMMResult
from interlace.results.coxme import CoxMEResult
from interlace.results.glmm import GLMMResult
from interlace.results.lmm import CrossedLMEResult, CrossedLMEResultWrapper
from interlace.results.mixedlm import MixedLMResults
from interlace.scale.glmm_results import ChunkedGLMMResult
from interlace.scale.results import ChunkedLMEResult

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "reference").glob("*.md")) + [ROOT / "README.md"]
RESULT_CLASSES = (CrossedLMEResult, CrossedLMEResultWrapper, GLMMResult, CLMMResult, CoxMEResult, ChunkedLMEResult,
                  ChunkedGLMMResult, MixedLMResults)
#: what a sentence says when it announces something as missing (a condition after "not available"
#: — "with a residual structure", "for a chunked fit" — states a limit instead, which may be true)
FUTURE = re.compile(r"\bplanned\b|not (yet )?available(?! (with|for|on|in|without|under|when)\b)|\(yet\)|"
                    r"coming next|to come\b|not supported yet", re.I)
DOTTED = re.compile(r"\b(interlace(?:\.[A-Za-z_]\w*)+)")
RESULT_ATTR = re.compile(r"\b(?:res|result)\.([A-Za-z_]\w*)")


def _prose(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, numbered from 1."""
    out, fenced = [], False
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((i, line))
    return out


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    obj = interlace
    for k, name in enumerate(parts[1:], 1):
        if hasattr(obj, name):
            obj = getattr(obj, name)
            continue
        try:
            obj = importlib.import_module(".".join(parts[:k + 1]))
        except ImportError:
            return False
    return True


@cache
def _fitted() -> tuple:
    """One fitted result of each kind (their attributes set in ``__init__`` count too)."""
    import warnings

    import pandas as pd

    from interlace.tests.conftest import REF

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sleep = interlace.datasets.load("sleepstudy")
        return (interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)"),
                interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                interlace.datasets.load("cbpp"), family="binomial"),
                interlace.clmm("rating ~ temp + contact + (1 | judge)", interlace.datasets.load("wine")),
                interlace.coxme("Surv(time, status) ~ age + (1 | inst)",
                                pd.read_csv(REF / "coxme" / "lung_inst" / "data.csv")))


def _is_result_attribute(name: str) -> bool:
    if any(hasattr(cls, name) or any(name in getattr(k, "__annotations__", {}) for k in cls.__mro__)
           for cls in RESULT_CLASSES):  # class attributes, and instance attributes the class declares
        return True
    return any(name in vars(getattr(r, "_results", r)) or hasattr(r, name) for r in _fitted())


def _exists(name: str) -> bool:
    """A name written in the docs that interlace has (a function, class or result attribute)."""
    name = name.rstrip("()")
    if name.startswith("interlace."):
        return _resolves(name)
    m = re.fullmatch(r"(?:res|result|m)\.(\w+)", name)
    if m:
        return _is_result_attribute(m.group(1))
    return name in getattr(interlace, "__all__", ()) and name not in ("datasets",)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_objects_exist(page):
    missing = []
    for i, line in _prose(page):
        for span in re.findall(r"`([^`]+)`", line):
            for dotted in DOTTED.findall(span):
                if not _resolves(dotted):
                    missing.append(f"{page.name}:{i}: {dotted}")
            for attr in RESULT_ATTR.findall(span):
                if not _is_result_attribute(attr):
                    missing.append(f"{page.name}:{i}: res.{attr}")
    assert not missing, "the docs name things interlace does not have:\n" + "\n".join(missing)


@cache
def _lme4_provided() -> frozenset:
    """R functions the lme4 translation tables (coming-from-lme4.md) give an interlace equivalent for."""
    out = set()
    for _, line in _prose(ROOT / "docs" / "coming-from-lme4.md"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`") or re.search(r"not (supported|available)", cells[1]):
            continue
        out.update(m.group(1) for span in re.findall(r"`([^`]+)`", cells[0])
                   if (m := re.match(r"([A-Za-z][\w.]*)\(", span)))
    return frozenset(out)


def _sentences(path: Path) -> list[tuple[int, str]]:
    """Sentences of the prose (paragraphs and list items joined across lines, table rows alone),
    with the line each starts on."""
    paras: list[tuple[int, str]] = []
    for i, line in _prose(path):
        text = line.strip()
        starts = not text or text.startswith(("|", "- ", "* ", "#")) or re.match(r"\d+\. ", text)
        if not text:
            continue
        if starts or not paras or paras[-1][1].startswith(("|", "#")):
            paras.append((i, text))
        else:
            paras[-1] = (paras[-1][0], paras[-1][1] + " " + text)
    out = []
    for i, para in paras:
        out += [(i, sent) for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z*`(])", para)]
    return out


#: interlace functions whose bare name in a sentence means the function (not an English word)
_BARE = {n for n in getattr(interlace, "__all__", ()) if n.islower() and n not in ("fit", "anova", "datasets")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_existing_is_announced_as_planned(page):
    wrong = []
    for i, line in _sentences(page):
        if not FUTURE.search(line):
            continue
        wrong += [f"{page.name}:{i}: {w}" for w in re.findall(r"\b\w+\b", re.sub(r"`[^`]*`", " ", line))
                  if w in _BARE]
        for span in re.findall(r"`([^`]+)`", line):
            names = (DOTTED.findall(span) + re.findall(r"\b(?:res|result)\.\w+", span)
                     + re.findall(r"^(\w+)\(\)?$", span))
            wrong += [f"{page.name}:{i}: {n}" for n in names if _exists(n)]
            r_fun = re.match(r"([A-Za-z][\w.]*)(\(|$)", span)
            if r_fun and r_fun.group(1) in _lme4_provided():
                wrong.append(f"{page.name}:{i}: {span} (lme4's, which interlace provides)")
            method = re.fullmatch(r"([a-z_]\w*)(\(.*\))?", span)
            if method and not method.group(1).startswith("_") and _is_result_attribute(method.group(1)):
                wrong.append(f"{page.name}:{i}: {span} (a result attribute)")
    assert not wrong, "the docs call existing features planned or unavailable:\n" + "\n".join(wrong)


def test_the_checks_catch_what_the_issue_found():
    """The sentences issue 15 found false, and typos, are caught."""
    assert _exists("interlace.clmm") and _exists("interlace.coxme") and _exists("res.conf_int_all")
    assert not _resolves("interlace.fitt") and not _is_result_attribute("fe_parms")
    assert FUTURE.search("ordinal (`clmm`) and survival frailty (`coxme`) models are planned.")
    assert FUTURE.search("- **Not available (yet):** profile and parametric-bootstrap confidence intervals")
    assert FUTURE.search("Coming next (planned, not yet available): clmm")
    assert {"confint", "bootMer", "profile", "coef", "glmer", "offset"} <= _lme4_provided()
    assert "poly" in _lme4_provided() and "nlmer" not in _lme4_provided()
