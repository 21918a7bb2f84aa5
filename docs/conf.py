"""Sphinx configuration of the photutils-clusterclf documentation.

Build (offline, warnings as errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The figures under ``_static/`` are made by ``python docs/make_figures.py``.
"""

import datetime
import importlib.util
import os
import sys

# sphinx-astropy's shared settings (numpydoc, automodapi, doctestplus, the
# astropy-unified theme); everything that needs the network is undone below.
from sphinx_astropy.conf.v3 import *  # noqa: F401, F403
from sphinx_astropy.conf.v3 import extensions as _astropy_extensions

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
import photutils_clusterclf  # noqa: E402

# -- project ------------------------------------------------------------------
project = "photutils-clusterclf"
author = "photutils-clusterclf developers"
copyright = f"{datetime.date.today().year}, {author}"
version = release = photutils_clusterclf.__version__

# -- extensions ---------------------------------------------------------------
# sphinx-astropy lists optional extensions (sphinx-copybutton comes only with
# its "confv2" extra); keep those that are installed so that the plain
# ``pip install -e .[docs]`` environment builds.
extensions = [
    ext for ext in _astropy_extensions if importlib.util.find_spec(ext.split(".")[0]) is not None
]
for _ext in (
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
):
    if _ext not in extensions:
        extensions.append(_ext)

# -- offline build --------------------------------------------------------------
# The docs build without network access: no intersphinx inventories are
# fetched, so references to numpy, astropy, torch, ... render as code
# without links. ``nitpicky`` stays off for the same reason (those targets
# cannot resolve offline); references inside this package still link.
intersphinx_mapping = {}
nitpicky = False

# -- API pages ----------------------------------------------------------------
automodapi_toctreedirnm = "api"
# Inheritance diagrams need Graphviz's ``dot``, which is not a Python
# dependency; the class pages list the bases instead.
automodapi_inheritance_diagram = False
automodsumm_inherited_members = False
numpydoc_show_class_members = False

# -- sources ------------------------------------------------------------------
exclude_patterns = ["_build"]
templates_path = []

# -- HTML ----------------------------------------------------------------------
html_title = f"{project} v{release}"
# The figures in _static/ are referenced by the pages (copied to _images/);
# no theme overrides, so no html_static_path.
html_static_path = []
html_last_updated_fmt = "%d %b %Y"
