"""MkDocs hooks (``hooks:`` in mkdocs.yml).

- The scripts in examples/ are published with the site.  The pages link them as
  ``../examples/NAME.py``, which is right on GitHub and in a checkout; on the site the
  scripts sit at ``examples/NAME.py`` and those links are pointed there.
- The docstrings cross-reference with Sphinx roles (``:func:`interlace.fit```), which
  Markdown shows as ``:func:`` before a code span: the role is dropped, the code span kept.
- In table cells, ``\\|`` inside a code span (GitHub's way to write a bar there, as in
  ``(1 \\| g)``) is shown as ``|``: Python-Markdown keeps the backslash.
- :class:`GroupedParameters`, a griffe extension loaded by mkdocstrings, gives each name
  of a grouped numpydoc parameter entry (``a, b : float``) its own default.
- :data:`KNOWN_GRIFFE_WARNINGS` lets ``mkdocs build --strict`` pass over griffe warnings
  about docstrings that are known and being fixed elsewhere; every other warning fails
  the build.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from griffe import DocstringSectionKind, Extension
from mkdocs.structure.files import File

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: (file, message) of griffe docstring warnings let through; remove an entry once fixed.
KNOWN_GRIFFE_WARNINGS: list[tuple[str, str]] = []


class _KnownWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(f in msg and m in msg for f, m in KNOWN_GRIFFE_WARNINGS)


def on_startup(command, dirty):
    logging.getLogger("mkdocs.plugins.griffe").addFilter(_KnownWarnings())


def on_files(files, config):
    for script in sorted(EXAMPLES.glob("*.py")):
        files.append(File.generated(config, f"examples/{script.name}", abs_src_path=str(script)))
    return files


def on_page_markdown(markdown, page, config, files):
    up = "../" * page.file.src_uri.count("/")
    return markdown.replace("](../examples/", f"]({up}examples/")


_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):<code>~?([^<]*)</code>")


def _role(m: re.Match) -> str:
    name = m.group(1)
    if "<code>~" in m.group(0):
        name = name.rsplit(".", 1)[-1]
    return f"<code>{name}</code>"


_CELL = re.compile(r"<t([dh])\b([^>]*)>(.*?)</t\1>", re.DOTALL)
_CODE = re.compile(r"<code>([^<]*)</code>")


def _cell(m: re.Match) -> str:
    inner = _CODE.sub(lambda c: "<code>" + c.group(1).replace("\\|", "|") + "</code>", m.group(3))
    return f"<t{m.group(1)}{m.group(2)}>{inner}</t{m.group(1)}>"


def on_page_content(html, page, config, files):
    # docstrings use Sphinx roles (:func:`interlace.fit`); Markdown renders them as
    # ":func:" before the code span: keep the code span only (":class:`~a.b.C`" -> "C")
    html = _ROLE.sub(_role, html)
    # a table cell's code span writes lme4's bar as `(1 \| g)` (GitHub's escape); Python-Markdown
    # keeps the backslash there: drop it
    return _CELL.sub(_cell, html)


# statsmodels' ``@cache_readonly`` makes a cached property, as ``functools.cached_property``
# does: tell griffe, so that ``MixedLMResults.llf`` is documented as an attribute, not a
# method.  (Griffe keeps this table internally; without it the members show as methods.)
try:
    from griffe._internal.agents.visitor import stdlib_decorators as _decorators

    _decorators.setdefault("statsmodels.tools._decorators.cache_readonly", {"cached", "property"})
except ImportError:  # pragma: no cover - another griffe layout
    pass


class GroupedParameters(Extension):
    """Griffe extension: each name of a grouped numpydoc entry keeps its own default.

    For ``alphamax, maxpts, delta_cutoff : float`` (or with no type at all) griffe gives
    every name the signature default (and, with no type, the annotation) of the first
    name; this puts each name's own back.  Loaded by mkdocstrings (``extensions:``).
    """

    def on_function(self, *, func, loader, **kwargs):
        if func.docstring is None:
            return
        sig = func.parameters
        for section in func.docstring.parsed:
            if section.kind is not DocstringSectionKind.parameters:
                continue
            items = section.value
            first = None
            for item in items:
                # griffe gives the names of one entry the same description and annotation objects
                if first is None or not (item.description is first.description and item.annotation is first.annotation):
                    first = item
                    continue
                if item.name not in sig or first.name not in sig:
                    continue
                item.value = sig[item.name].default
                if first.annotation is not None and first.annotation == sig[first.name].annotation:
                    item.annotation = sig[item.name].annotation
