"""Shared test settings: no network, no display, small and deterministic."""

import os

import pytest

# Tests never touch the network: the ImageNet loader must not try a download.
os.environ["CLUSTERCLF_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Each test sees an empty torch cache unless it writes one itself."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
