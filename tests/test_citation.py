"""The citation path: CITATION.cff, clusterclf --cite and the catalogue meta."""

import configparser
import re
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
    assert {(506, 5294), (526, 2991)} <= refs
    # The method paper is the preferred citation, not repeated as a reference.
    assert (493, 3178) not in refs


def _bibtex_family_names(key):
    """Family names of the authors of BibTeX entry ``key`` in ``__bibtex__``."""
    entry = photutils_clusterclf.__bibtex__.split(f"{{{key},", 1)[1]
    authors = re.search(r"author = \{(.*?)\},\n", entry, flags=re.S).group(1)
    return [
        a.strip().split("}", 1)[0].lstrip("{") for a in " ".join(authors.split()).split(" and ")
    ]


def test_citation_cff_and_cite_agree():
    cff = yaml.safe_load(citation_file())
    # The same 16 authors, in the same order, as ``clusterclf --cite``.
    cff_names = [a["family-names"] for a in cff["preferred-citation"]["authors"]]
    assert cff_names == _bibtex_family_names("2020MNRAS.493.3178W")
    # The repository of the package metadata, in the CFF and in --cite.
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    url = config["metadata"]["url"]
    assert cff["repository-code"] == url
    assert f"url = {{{url}}}" in photutils_clusterclf.__bibtex__
    # Every reference lists its authors, not just the first one.
    assert all(len(ref["authors"]) > 1 for ref in cff["references"])


def test_bibtex_and_meta_citation():
    bib = photutils_clusterclf.__bibtex__
    assert "@ARTICLE{2020MNRAS.493.3178W" in bib and "@software{photutils_clusterclf" in bib
    assert f"version = {{{photutils_clusterclf.__version__}}}" in bib
    assert "10.1093/mnras/staa325" in CITATION
