"""Interrupted work leaves no partial output and never damages an existing one.

``classify`` and ``simulate`` are interrupted in the middle of the work
(KeyboardInterrupt inside the model forward pass) or in the middle of
writing (the table / FITS writer writes some bytes and then fails), and
the output directory is checked afterwards: no ``.part`` temporary file,
no truncated output, an existing output byte-for-byte unchanged.
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from helpers import make_classifier, run_cli, write_band_files, write_catalogue

from photutils_clusterclf._inference import InferenceEngine
from photutils_clusterclf.datasets import simulate_field
from photutils_clusterclf.pipeline import classify_files

OLD = b"an existing output that must survive"


def snapshot(directory):
    """name -> bytes of every file in a directory (hidden files included)."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.is_file()}


def leftovers(directory):
    """Temporary files of `atomic_output` left in a directory."""
    return [p.name for p in Path(directory).iterdir() if ".part" in p.name]


def partial_writer(exc, *, real=None, calls_before=0):
    """A replacement writer that writes some bytes to its target, then raises ``exc``.

    The first ``calls_before`` calls go to the ``real`` writer, so that the
    failure hits the middle of a sequence of files.
    """
    state = {"calls": 0}

    def write(self, target, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] <= calls_before:
            return real(self, target, *args, **kwargs)
        Path(target).write_bytes(b"SIMPLE  =                    T" + b" " * 500)
        raise exc

    return write


@pytest.fixture
def field(tmp_path):
    bands = write_band_files(tmp_path / "images")
    model = tmp_path / "model.pt"
    make_classifier().save(model)
    cat = write_catalogue(tmp_path / "cat.fits", x=np.linspace(5, 45, 12), y=np.linspace(5, 35, 12))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    return {"bands": bands, "model": model, "catalog": cat, "out_dir": out_dir}


def classify_argv(field, out, *extra):
    return [
        "classify",
        "--model",
        field["model"],
        "--catalog",
        field["catalog"],
        "--images",
        *(f"{b}={p}" for b, p in field["bands"].items()),
        "--out",
        out,
        "--quiet",
        "--batch-size",
        "2",
        *extra,
    ]


def interrupt_forward(monkeypatch, after_batches=2):
    """Make the forward pass raise KeyboardInterrupt after some batches."""
    real = InferenceEngine.member_probs
    state = {"batches": 0}

    def member_probs(self, inputs, *, tta):
        state["batches"] += 1
        if state["batches"] > after_batches:
            raise KeyboardInterrupt
        return real(self, inputs, tta=tta)

    monkeypatch.setattr(InferenceEngine, "member_probs", member_probs)
    return state


# -- classify ------------------------------------------------------------------------


def test_classify_files_interrupted_in_forward_keeps_old_output(field, monkeypatch):
    out = field["out_dir"] / "classified.fits"
    out.write_bytes(OLD)
    before = snapshot(field["out_dir"])
    state = interrupt_forward(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        classify_files(
            field["model"],
            field["catalog"],
            field["bands"],
            out,
            overwrite=True,
            device="cpu",
            progress_bar=False,
            batch_size=2,
        )
    assert state["batches"] == 3  # interrupted in the middle, not before starting
    assert snapshot(field["out_dir"]) == before
    assert leftovers(field["out_dir"]) == []


def test_classify_cli_interrupted_exits_130_without_output(field, monkeypatch, capsys):
    out = field["out_dir"] / "classified.ecsv"
    regions = field["out_dir"] / "classified.reg"
    interrupt_forward(monkeypatch)
    status, _, err = run_cli(classify_argv(field, out, "--regions", regions), capsys)
    assert status == 130
    assert err.strip().splitlines() == [
        "clusterclf classify: interrupted; no partial output was written"
    ]
    assert snapshot(field["out_dir"]) == {}


@pytest.mark.parametrize("suffix", [".fits", ".ecsv"])
@pytest.mark.parametrize(
    "exc, status",
    [(OSError(28, "No space left on device"), 2), (KeyboardInterrupt(), 130)],
)
def test_classify_writer_fails_midway_keeps_old_output(
    field, monkeypatch, capsys, suffix, exc, status
):
    out = field["out_dir"] / f"classified{suffix}"
    out.write_bytes(OLD)
    before = snapshot(field["out_dir"])
    writer = partial_writer(exc)
    monkeypatch.setattr(Table, "write", writer)
    got, _, err = run_cli(classify_argv(field, out, "--overwrite"), capsys)
    assert got == status, err
    assert len(err.strip().splitlines()) == 1
    assert snapshot(field["out_dir"]) == before
    assert leftovers(field["out_dir"]) == []


def test_classify_writer_fails_on_new_output_leaves_nothing(field, monkeypatch, capsys):
    out = field["out_dir"] / "classified.fits"
    monkeypatch.setattr(Table, "write", partial_writer(OSError(5, "Input/output error")))
    status, _, err = run_cli(classify_argv(field, out), capsys)
    assert status == 2 and "Input/output error" in err
    assert snapshot(field["out_dir"]) == {}


def test_classify_interrupted_while_writing_regions_leaves_no_catalogue(field, monkeypatch, capsys):
    from photutils_clusterclf import regions_io

    out = field["out_dir"] / "classified.fits"
    reg = field["out_dir"] / "classified.reg"

    def interrupted(rows, precision=8):
        raise KeyboardInterrupt

    # The DS9 text is made while the catalogue's temporary file exists.
    monkeypatch.setattr(regions_io, "_ds9_text", interrupted)
    status, _, _ = run_cli(classify_argv(field, out, "--regions", reg), capsys)
    assert status == 130
    assert snapshot(field["out_dir"]) == {}


# -- simulate ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    return simulate_field(shape=(64, 64), n_candidates=4, seed=3, noise=False)


@pytest.fixture(scope="module")
def other_sim():
    return simulate_field(shape=(64, 64), n_candidates=4, seed=4, noise=False)


def _patch_hdulist_writeto(monkeypatch, exc, calls_before):
    writer = partial_writer(exc, real=fits.HDUList.writeto, calls_before=calls_before)
    monkeypatch.setattr(fits.HDUList, "writeto", writer)


def test_simulate_write_interrupted_leaves_no_partial_file(sim, tmp_path, monkeypatch):
    _patch_hdulist_writeto(monkeypatch, KeyboardInterrupt(), calls_before=2)
    with pytest.raises(KeyboardInterrupt):
        sim.write(tmp_path)
    names = sim.filenames()
    # Files written before the interruption are complete; the rest absent.
    done = snapshot(tmp_path)
    assert leftovers(tmp_path) == []
    assert set(done) <= set(names.values())
    monkeypatch.undo()
    for name in done:
        with fits.open(tmp_path / name) as hdul:
            np.testing.assert_array_equal(hdul[0].data, sim.images[hdul[0].header["FILTER"]])


def test_simulate_overwrite_interrupted_keeps_each_old_file_whole(
    sim, other_sim, tmp_path, monkeypatch
):
    other_sim.write(tmp_path)
    old = snapshot(tmp_path)
    _patch_hdulist_writeto(monkeypatch, OSError(28, "No space left on device"), calls_before=2)
    with pytest.raises(OSError, match="No space left"):
        sim.write(tmp_path, overwrite=True)
    now = snapshot(tmp_path)
    assert leftovers(tmp_path) == [] and set(now) == set(old)
    # Every file is either the old one or a complete new one, never a mix of bytes.
    monkeypatch.undo()
    for name, data in now.items():
        if data != old[name]:
            with fits.open(tmp_path / name) as hdul:
                np.testing.assert_array_equal(hdul[0].data, sim.images[hdul[0].header["FILTER"]])


@pytest.mark.parametrize("overwrite", [False, True])
def test_simulate_write_interrupted_is_all_or_nothing(
    sim, other_sim, tmp_path, monkeypatch, overwrite
):
    if overwrite:
        other_sim.write(tmp_path)
    before = snapshot(tmp_path)
    _patch_hdulist_writeto(monkeypatch, KeyboardInterrupt(), calls_before=2)
    with pytest.raises(KeyboardInterrupt):
        sim.write(tmp_path, overwrite=overwrite)
    assert snapshot(tmp_path) == before


def test_simulate_cli_interrupted_keeps_old_field(other_sim, tmp_path, monkeypatch, capsys):
    out = tmp_path / "field"
    out.mkdir()
    other_sim.write(out)
    before = snapshot(out)
    # Interrupted while the first band image is being written.
    _patch_hdulist_writeto(monkeypatch, KeyboardInterrupt(), calls_before=0)
    status, _, err = run_cli(
        [
            "simulate",
            "--out",
            out,
            "--shape",
            "64",
            "64",
            "--n-candidates",
            "4",
            "--seed",
            "3",
            "--overwrite",
        ],
        capsys,
    )
    assert status == 130 and "interrupted" in err
    assert snapshot(out) == before


def test_simulate_cli_catalogue_write_fails(tmp_path, monkeypatch, capsys):
    out = tmp_path / "field"
    monkeypatch.setattr(Table, "write", partial_writer(OSError(28, "No space left on device")))
    status, _, err = run_cli(
        [
            "simulate",
            "--out",
            out,
            "--shape",
            "64",
            "64",
            "--n-candidates",
            "4",
            "--seed",
            "3",
        ],
        capsys,
    )
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert leftovers(out) == []
    assert not any("phangs-cat" in name for name in snapshot(out))


def test_simulate_cli_interrupted_before_writing_leaves_no_directory(tmp_path, monkeypatch, capsys):
    from photutils_clusterclf import datasets

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "simulate_field", interrupted)
    out = tmp_path / "new" / "field"
    status, _, _ = run_cli(["simulate", "--out", out, "--shape", "64", "64"], capsys)
    assert status == 130
    assert not (tmp_path / "new").exists()
