"""The docs are in sync with the code: their code runs, and the outputs they show are what it prints.

This is a consistency check, not evidence of correctness: the shown outputs are
regenerated from interlace itself (``--write`` below), so a wrong number that the code
prints would be shown and pass here.  Correctness is tested against references (R,
hand derivations) in the other test modules; ``test_examples`` checks the examples'
numbers against such references.

Every ```python block of a page in :data:`PAGES` is executed in order, all blocks
of a page sharing one namespace (as a reader pasting them into one session
would).

A ```text block placed right after a ```python block (only blank lines between)
is that block's output: what it prints to stdout, with every warning it issues
written inline as ``WarningClass: message`` (the test records all warnings, none
are filtered).  ``test_docs_outputs_in_sync_with_code`` checks that the shown output
matches the real one: text exactly (up to whitespace), numbers to a relative 5e-4 plus one
unit of the last digit both print (optimizers and BLAS builds differ in the last
digits; singular fits, whose BLUPs hang on θ values near 0, differ most).  A block
that prints something must show it, and a block that prints nothing must not be
followed by a text block.  An HTML comment
``<!-- docs-test: output-varies -->`` on the line before a ```python block
exempts its output from the comparison (machine-dependent output).  A block that raises
fails ``test_docs_code_runs`` for its page.

Blocks in other languages (```bash, ```r, and the ```text after them) are not
run.  lme4 outputs shown in the docs were made with R and are not checked here.

Regenerating the shown outputs after a change::

    python3 -m interlace.tests.test_docs --write            # every page
    python3 -m interlace.tests.test_docs --write fit.md     # one page
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: Pages whose python blocks are run and whose shown outputs are checked.
PAGES = [
    "index.md",
    "quickstart.md",
    "installation.md",
    "fit.md",
    "results.md",
    "random-slopes.md",
    "coming-from-lme4.md",
    "model-comparison.md",
    "mixedlm.md",
    "glmm.md",
    "clmm.md",
    "coxme.md",
    "diagnostics.md",
    "examples.md",
    "coming-from-statsmodels.md",
    "correlation.md",
    "scale.md",
    "emmeans.md",
    "model-checking.md",
    "power.md",
    "security.md",
]

#: Pages linked from the docs that other contributors are writing.
PAGES_ELSEWHERE = {"benchmarks.md"}

VARIES = "<!-- docs-test: output-varies -->"
RTOL = 5e-4
ATOL = 1e-8


# ----------------------------------------------------------------------------- parsing
@dataclass
class Block:
    """A fenced code block: ``start`` is the line of the opening fence, ``end`` of the closing one."""

    lang: str
    start: int
    end: int
    code: str
    directive: str = ""


@dataclass
class PythonBlock:
    block: Block
    output: Block | None  # the ```text block shown right after it
    captured: str = ""
    error: BaseException | None = None


def parse_blocks(lines: list[str]) -> list[Block]:
    """Fenced blocks of a markdown page (``` fences, info string = language)."""
    blocks = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(`{3,})\s*([\w+-]*)", lines[i])
        if m:
            fence, lang = m.group(1), m.group(2).lower()
            j = i + 1
            while j < len(lines) and not lines[j].startswith(fence):
                j += 1
            if j == len(lines):
                raise ValueError(f"unclosed code fence at line {i + 1}")
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            directive = lines[k].strip() if k >= 0 and lines[k].strip().startswith("<!-- docs-test:") else ""
            blocks.append(Block(lang, i, j, "".join(lines[i + 1:j]), directive))
            i = j + 1
        else:
            i += 1
    return blocks


def python_blocks(lines: list[str]) -> list[PythonBlock]:
    """Python blocks, each with the text block that shows its output (if any)."""
    blocks = parse_blocks(lines)
    out = []
    for n, b in enumerate(blocks):
        if b.lang != "python":
            continue
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        shown = None
        if nxt is not None and nxt.lang == "text" and all(not ln.strip() for ln in lines[b.end + 1:nxt.start]):
            shown = nxt
        out.append(PythonBlock(b, shown))
    return out


# ----------------------------------------------------------------------------- running
def _render_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"{category.__name__}: {message}\n"


def run_page(name: str) -> tuple[list[str], list[PythonBlock], float]:
    """Run every python block of ``docs/<name>`` in one namespace; stop at the first error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        pass
    path = DOCS / name
    lines = path.read_text().splitlines(keepends=True)
    pblocks = python_blocks(lines)
    ns: dict = {"__name__": "__main__"}
    cwd = os.getcwd()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # blocks that write files write them here
        try:
            for pb in pblocks:
                buf = io.StringIO()
                code = compile(pb.block.code, f"docs/{name}, block at line {pb.block.start + 1}", "exec")
                with warnings.catch_warnings():
                    warnings.simplefilter("always")
                    warnings.showwarning = lambda *a, _buf=buf, **k: _buf.write(_render_warning(*a, **k))
                    with contextlib.redirect_stdout(buf):
                        try:
                            exec(code, ns)  # noqa: S102 - running the docs is the point
                        except Exception as exc:  # noqa: BLE001 - reported by the caller
                            pb.error = exc
                pb.captured = buf.getvalue()
                if pb.error is not None:
                    break
        finally:
            os.chdir(cwd)
            try:
                import matplotlib.pyplot as plt

                plt.close("all")
            except ImportError:  # pragma: no cover
                pass
    return lines, pblocks, time.perf_counter() - t0


@cache
def _run_cached(name: str):
    return run_page(name)


# ----------------------------------------------------------------------------- comparing
_NUM = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def _split(text: str) -> tuple[list[str], list[str]]:
    """Text between numbers (whitespace collapsed) and the numbers themselves."""
    nums = _NUM.findall(text)
    parts = [" ".join(p.split()) for p in _NUM.split(text)]
    return parts, nums


def _unit(tok: str) -> float:
    """One unit of the last printed digit (0 for integers: they must match exactly)."""
    mant, _, exp = tok.lower().partition("e")
    if "." not in mant and not exp:
        return 0.0
    decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
    return 10.0 ** (-decimals + (int(exp) if exp else 0))


def outputs_match(shown: str, real: str) -> str | None:
    """None if ``shown`` matches ``real``, else a description of the first difference."""
    sp, sn = _split(shown)
    rp, rn = _split(real)
    if sp != rp or len(sn) != len(rn):
        for a, b in zip(sp, rp):
            if a != b:
                return f"text differs: shown {a!r}, real {b!r}"
        return f"{len(sn)} numbers shown, {len(rn)} printed"
    for a, b in zip(sn, rn):
        x, y = float(a), float(b)
        if _unit(a) == 0 and _unit(b) == 0:
            tol = 0.0  # integers: counts, sizes, levels
        else:
            tol = ATOL + RTOL * max(abs(x), abs(y)) + min(u for u in (_unit(a), _unit(b)) if u > 0)
        if abs(x - y) > tol:
            return f"number differs: shown {a}, real {b}"
    return None


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("page", PAGES)
def test_docs_code_runs(page):
    """Every python block of the page runs (in sync with the code's API)."""
    _, pblocks, _ = _run_cached(page)
    assert pblocks, f"docs/{page} has no python block"
    for pb in pblocks:
        if pb.error is not None:
            raise AssertionError(
                f"docs/{page}: the python block at line {pb.block.start + 1} raised "
                f"{type(pb.error).__name__}: {pb.error}\n--- output before the error ---\n{pb.captured}"
            ) from pb.error


@pytest.mark.parametrize("page", PAGES)
def test_docs_outputs_in_sync_with_code(page):
    """The outputs the page shows are the ones its code prints now.

    Not a correctness check: the shown outputs were written by this code (``--write``).
    """
    _, pblocks, _ = _run_cached(page)
    if any(pb.error is not None for pb in pblocks):
        pytest.fail(f"docs/{page} did not run (see test_docs_code_runs)")
    problems = []
    for pb in pblocks:
        where = f"docs/{page}, python block at line {pb.block.start + 1}"
        if pb.output is None:
            if pb.captured.strip() and pb.block.directive != VARIES:
                problems.append(f"{where} prints output the page does not show:\n{pb.captured}")
            continue
        if not pb.captured.strip():
            problems.append(f"{where} prints nothing but is followed by a text block")
            continue
        if pb.block.directive == VARIES:
            continue
        diff = outputs_match(pb.output.code, pb.captured)
        if diff:
            problems.append(f"{where}: {diff}\n--- real output ---\n{pb.captured}")
    assert not problems, "\n\n".join(problems) + "\n(regenerate with: python3 -m interlace.tests.test_docs --write)"


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(page):
    """Relative links to other pages point at pages that exist (or are being written elsewhere)."""
    text = (DOCS / page).read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        assert (DOCS / target).exists() or target in PAGES_ELSEWHERE, f"docs/{page} links to missing {target}"


# ----------------------------------------------------------------------------- regenerating
def write_outputs(name: str) -> None:
    """Rewrite the text blocks after the python blocks of ``docs/<name>`` with the real outputs."""
    lines, pblocks, seconds = run_page(name)
    for pb in pblocks:
        if pb.error is not None:
            raise RuntimeError(f"docs/{name}: block at line {pb.block.start + 1} raised") from pb.error
    # edit from the bottom so earlier line numbers stay valid
    for pb in reversed(pblocks):
        if pb.block.directive == VARIES and pb.output is not None:
            continue
        out = pb.captured.rstrip("\n")
        new = [] if not out.strip() else ["\n", "```text\n"] + [ln + "\n" for ln in out.split("\n")] + ["```\n"]
        if pb.output is not None:
            lines[pb.block.end + 1:pb.output.end + 1] = new
        elif new:
            lines[pb.block.end + 1:pb.block.end + 1] = new
    (DOCS / name).write_text("".join(lines))
    print(f"docs/{name}: {len(pblocks)} python blocks, {seconds:.1f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "--write":
        sys.exit("usage: python3 -m interlace.tests.test_docs --write [page.md ...]")
    for page in args[1:] or PAGES:
        write_outputs(page)
