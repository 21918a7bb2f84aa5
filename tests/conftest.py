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


@pytest.fixture(autouse=True)
def _isolated_astropy_cache(tmp_path_factory, monkeypatch):
    """Astropy's cache (the second place weights are looked for) is empty too.

    ``weights="auto"`` would otherwise train from whatever ``clusterclf
    pretrain`` installed on the developer's machine.
    """
    root = tmp_path_factory.mktemp("xdg_cache")
    (root / "photutils_clusterclf").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))


@pytest.fixture
def one_torch_thread():
    """Tiny networks run fastest on one thread (and do not fight parallel test runs)."""
    import torch  # not for the tests that never import it

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
