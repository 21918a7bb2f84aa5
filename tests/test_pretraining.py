"""Pretraining on simulated fields: corpus plan, reproducibility, resume, named install."""

import numpy as np
import pytest
import torch

from photutils_clusterclf import build_model
from photutils_clusterclf.checkpoint import load_checkpoint
from photutils_clusterclf.cli import main
from photutils_clusterclf.datasets import simulate_field
from photutils_clusterclf.training import corpus_plan, pretrain
from photutils_clusterclf.training.pretraining import PRETRAIN_RANGES
from photutils_clusterclf.weights import WEIGHTS, WeightsEntry, find_weights_file

from helpers import BANDS

TINY = {"arch": "small_cnn", "n_fields": 2, "n_candidates": 40, "epochs": 2, "seed": 3}


@pytest.fixture(autouse=True)
def _isolated_astropy_cache(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("xdg_cache")
    (root / "photutils_clusterclf").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))


def test_corpus_plan_is_diverse_and_deterministic():
    plan = corpus_plan(8, n_candidates=800, seed=0)
    assert plan == corpus_plan(8, n_candidates=800, seed=0)
    assert plan != corpus_plan(8, n_candidates=800, seed=1)
    low, high = PRETRAIN_RANGES["distance_mpc"]
    assert all(low <= p["distance_mpc"] <= high for p in plan)
    combos = {(p["instrument"], p["disk_structure"]) for p in plan}
    assert combos == {("wfc3", True), ("acs", True), ("wfc3", False), ("acs", False)}
    assert len({p["seed"] for p in plan}) == 8
    assert plan[0]["shape"] == (2048, 2048)  # PHANGS-like density
    with pytest.raises(ValueError, match="n_fields must be a positive integer"):
        corpus_plan(0)


def test_simulator_psf_scale_and_smooth_disk():
    base = simulate_field(shape=(200, 200), n_candidates=10, seed=2)
    wide = simulate_field(shape=(200, 200), n_candidates=10, seed=2, psf_scale=1.2)
    for band in base.bands:
        assert wide.psf[band]["fwhm"] == pytest.approx(1.2 * base.psf[band]["fwhm"])
    smooth = simulate_field(
        shape=(200, 200),
        n_candidates=10,
        seed=2,
        noise=False,
        field_star_density=0,
        disk_structure=False,
    )
    arms = simulate_field(
        shape=(200, 200), n_candidates=10, seed=2, noise=False, field_star_density=0
    )
    assert not np.array_equal(smooth.images["F555W"], arms.images["F555W"])
    with pytest.raises(ValueError, match="psf_scale"):
        simulate_field(shape=(200, 200), n_candidates=1, psf_scale=0)


class _Stop(Exception):
    pass


def _stop_after_first_epoch(record):
    if record["epoch"] == 1:
        raise _Stop


@pytest.mark.slow
def test_pretrain_is_bit_for_bit_reproducible_and_resumable(tmp_path):
    path, sha = pretrain(tmp_path / "a.pt", progress_bar=False, batch_size=16, **TINY)
    assert not (tmp_path / ".a.pt.pretrain").exists()  # work dir removed on success
    card = load_checkpoint(path).card
    info = card.training["pretraining"]
    assert info["n_candidates"] > 0 and info["n_fields"] == 2
    assert info["validation_fields"] == ["pretrain-0001"]
    assert 0 <= info["val_macro_recall"] <= 1 and len(info["val_recall"]) == 4
    assert info["simulator"].startswith("photutils_clusterclf.datasets")
    assert info["options"]["seed"] == 3 and info["label"].startswith("true class")
    assert tuple(card.bands) == BANDS
    # The thread count decides the last bits on the CPU, so the card says it.
    assert info["torch_threads"] == torch.get_num_threads()
    # Interrupted after one epoch, then the same call again: same bytes.
    with pytest.raises(_Stop):
        pretrain(
            tmp_path / "b.pt",
            progress_bar=False,
            batch_size=16,
            log=_stop_after_first_epoch,
            **TINY,
        )
    assert not (tmp_path / "b.pt").exists()
    assert (tmp_path / ".b.pt.pretrain" / "train" / "member0.pt").is_file()
    _, sha_b = pretrain(tmp_path / "b.pt", progress_bar=False, batch_size=16, **TINY)
    assert sha_b == sha
    with pytest.raises(FileExistsError, match="already exists"):
        pretrain(tmp_path / "a.pt", progress_bar=False, **TINY)


@pytest.mark.slow
def test_cli_pretrain_name_installs_into_the_cache(tmp_path, monkeypatch, capsys):
    entry = WeightsEntry(
        name="sim-tiny",
        arch="small_cnn",
        bands=BANDS,
        cutout_size=32,
        input_size=32,
        description="test corpus",
        recipe=TINY,
    )
    monkeypatch.setitem(WEIGHTS, entry.name, entry)
    assert main(["pretrain", "--name", "sim-tiny", "--epochs", "3", "--quiet"]) == 2
    assert "options differ" in capsys.readouterr().err
    assert main(["pretrain", "--name", "sim-tiny", "--quiet"]) == 0
    installed = find_weights_file("sim-tiny")
    assert str(installed) in capsys.readouterr().out
    assert [p.name for p in installed.parent.iterdir()] == [installed.name]
    build_model("small_cnn", weights="sim-tiny")
