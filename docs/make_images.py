"""Regenerate the figures in docs/images/ from the code of the pages that draw them.

    python3 docs/make_images.py                  # every page in PAGES
    python3 docs/make_images.py diagnostics.md   # one page

The python blocks of each page run in order in one namespace (as the docs tests run
them), with docs/images/ as the working directory, so a block's
``fig.savefig("name.png")`` writes ``docs/images/name.png``: the committed figure is
made by the code the page shows.  matplotlib's Agg backend is used.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
IMAGES = DOCS / "images"
sys.path.insert(0, str(DOCS.parent))  # the checkout's interlace, installed or not

#: Pages whose code writes figures.
PAGES = ["diagnostics.md", "examples.md", "coxme.md"]

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown page, in order."""
    return _BLOCK.findall(text)


def run_page(name: str) -> list[Path]:
    """Run the page's python blocks in docs/images/; return the images written or rewritten."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in IMAGES.glob("*.png")}
    ns: dict = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(IMAGES)
    try:
        for k, code in enumerate(python_blocks((DOCS / name).read_text())):
            exec(compile(code, f"docs/{name}, python block {k + 1}", "exec"), ns)  # noqa: S102
            plt.close("all")
    finally:
        os.chdir(cwd)
    return sorted(p for p in IMAGES.glob("*.png") if before.get(p) != p.stat().st_mtime_ns)


def main(argv: list[str]) -> None:
    for name in argv or PAGES:
        written = run_page(name)
        print(f"docs/{name}: wrote {', '.join(p.name for p in written) or 'nothing'}")


if __name__ == "__main__":
    main(sys.argv[1:])
