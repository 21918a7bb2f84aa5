"""Consistency of the documentation with the package (the pages' examples run as doctests)."""

import ast
import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

import photutils_clusterclf

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _code_blocks(text, language):
    """Bodies of ``.. code-block:: <language>`` directives, dedented."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != f".. code-block:: {language}":
            continue
        body = []
        for nxt in lines[i + 1 :]:
            if nxt.strip() and not nxt.startswith(" "):
                break
            body.append(nxt)
        indent = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        blocks.append("\n".join(b[indent:] for b in body).strip("\n"))
    return blocks


def test_citing_page_has_the_package_bibtex():
    """Every line of ``__bibtex__`` is in the BibTeX block of the citing page."""
    blocks = _code_blocks((DOCS / "citing.rst").read_text(encoding="utf-8"), "bibtex")
    assert len(blocks) == 1
    assert blocks[0].strip() == photutils_clusterclf.__bibtex__.strip()


def test_citing_page_names_the_papers():
    text = (DOCS / "citing.rst").read_text(encoding="utf-8")
    # The DOI of the method paper is in the BibTeX block checked above.
    for needle in ("MNRAS 506, 5294", "MNRAS 526, 2991", "clusterclf --cite"):
        assert needle in text


def _public_modules():
    package = ROOT / "photutils_clusterclf"
    names = {
        f"photutils_clusterclf.{p.stem}" for p in package.glob("*.py") if not p.stem.startswith("_")
    }
    names |= {f"photutils_clusterclf.{p.parent.name}" for p in package.glob("*/__init__.py")}
    return names | {"photutils_clusterclf"}


def test_api_reference_covers_every_public_module():
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodapi:: (\S+)$", text, flags=re.M))
    assert _public_modules() <= documented, sorted(_public_modules() - documented)


def test_api_reference_documents_reexported_names_once():
    """Names re-exported by the package are skipped on their module's page.

    Otherwise Sphinx sees two descriptions of one object and the ``-W``
    build fails.
    """
    import importlib

    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    entries = re.findall(r"^\.\. automodapi:: (\S+)\n((?:   :.*\n)*)", text, flags=re.M)
    top = set(photutils_clusterclf.__all__)
    for module, options in entries:
        if module == "photutils_clusterclf":
            continue
        skip = re.search(r":skip: (.*)", options)
        skipped = {n.strip() for n in skip.group(1).split(",")} if skip else set()
        exported = set(getattr(importlib.import_module(module), "__all__", ()))
        assert exported & top == skipped, (module, sorted(exported & top), sorted(skipped))


def test_toctree_pages_and_figures_exist():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    pages = re.findall(r"^   (\w+)$", index, flags=re.M)
    assert {
        "install",
        "quickstart",
        "classes",
        "classify",
        "regions",
        "training",
        "scaling",
        "bad_input",
        "paper_experiment",
        "legus",
        "performance",
        "citing",
        "api",
        "changes",
    } <= set(pages)
    for page in pages:
        if page == "bad_input":  # written separately; the build checks it
            continue
        text = (DOCS / f"{page}.rst").read_text(encoding="utf-8")
        for figure in re.findall(r"^\.\. figure:: (\S+)$", text, flags=re.M):
            path = DOCS / figure
            assert path.is_file(), f"{page}.rst: {figure} missing (python docs/make_figures.py)"
            assert path.stat().st_size < 300_000, f"{figure} is larger than 300 kB"


def test_python_code_blocks_are_valid_python():
    for page in DOCS.glob("*.rst"):
        for block in _code_blocks(page.read_text(encoding="utf-8"), "python"):
            ast.parse(block, filename=str(page))


@pytest.mark.slow
def test_legus_page_shows_the_benchmark_output():
    """The LEGUS page is the verbatim output of ``benchmarks/legus_agreement.py``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import legus_agreement
    finally:
        sys.path.pop(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        legus_agreement.main([])
    blocks = _code_blocks((DOCS / "legus.rst").read_text(encoding="utf-8"), "text")
    assert out.getvalue().strip() in blocks


def test_consensus_page_shows_the_legus_consensus_output():
    """The LEGUS section of the consensus page is the output of ``benchmarks/legus_consensus.py``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import legus_consensus
    finally:
        sys.path.pop(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        legus_consensus.main([])
    blocks = _code_blocks((DOCS / "consensus.rst").read_text(encoding="utf-8"), "text")
    assert out.getvalue().strip() in blocks
