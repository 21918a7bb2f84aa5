"""The citation path: CITATION.cff, clusterclf --cite and the catalogue meta."""

from pathlib import Path

import yaml

import photutils_clusterclf
from photutils_clusterclf.classifier import CITATION

ROOT = Path(__file__).resolve().parents[1]


def citation_file():
    return (ROOT / "CITATION.cff").read_text()


def test_citation_cff_is_valid():
    from cffconvert import Citation
    Citation(citation_file()).validate()  # raises on a schema violation


def test_citation_cff_names_the_papers_and_the_software():
    cff = yaml.safe_load(citation_file())
    assert cff["type"] == "software"
    assert cff["version"] == photutils_clusterclf.__version__
    assert cff["preferred-citation"]["doi"] == "10.1093/mnras/staa325"
    refs = {(r["volume"], r["start"]) for r in cff["references"]}
    assert {(493, 3178), (506, 5294), (526, 2991)} <= refs


def test_bibtex_and_meta_citation():
    bib = photutils_clusterclf.__bibtex__
    assert "@ARTICLE{2020MNRAS.493.3178W" in bib and "@software{photutils_clusterclf" in bib
    assert f"version = {{{photutils_clusterclf.__version__}}}" in bib
    assert "10.1093/mnras/staa325" in CITATION
