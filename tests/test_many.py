"""classify_many, read_manifest and run_manifest: serial and on a Dask LocalCluster."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from helpers import BANDS, make_wcs

from photutils_clusterclf import many
from photutils_clusterclf.checkpoint import CheckpointError
from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.cli import main
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.many import (
    ClassifyManyError,
    GalaxyJob,
    classify_many,
    read_manifest,
)
from photutils_clusterclf.models import build_model

SHAPE = (64, 64)
N_CANDIDATES = 12
PROB_COLUMNS = [f"prob_class{k}" for k in (1, 2, 3, 4)]


def _write_galaxy(directory, name, seed):
    """PHANGS-named band mosaics (noise + point sources) and a PHANGS catalogue."""
    rng = np.random.default_rng(seed)
    images = directory / f"{name}_images"
    images.mkdir()
    # Some candidates near or beyond the edge exercise the flags path as well.
    x = np.concatenate([rng.uniform(8, SHAPE[1] - 8, N_CANDIDATES - 2), [1.0, 70.0]])
    y = np.concatenate([rng.uniform(8, SHAPE[0] - 8, N_CANDIDATES - 2), [30.0, 30.0]])
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    header = make_wcs(
        SHAPE, crval=(24.17 + seed * 0.01, 15.78), scale_arcsec=1.1e-5 * 3600
    ).to_header()
    for band in BANDS:
        data = rng.normal(0.0, 0.05, SHAPE)
        for xc, yc, flux in zip(x, y, rng.uniform(1, 20, len(x)), strict=True):
            data += flux * np.exp(-((xx - xc) ** 2 + (yy - yc) ** 2) / 2.0)
        fname = f"hlsp_phangs-hst_hst_wfc3-uvis_{name}_{band.lower()}_v1_exp-drc-sci.fits"
        fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(images / fname)
    catalog = directory / f"{name}_cat.fits"
    Table({"ID_PHANGS_CLUSTERS": np.arange(1, len(x) + 1), "PHANGS_X": x, "PHANGS_Y": y}).write(
        catalog
    )
    return catalog, images


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A random small_cnn checkpoint and four tiny galaxies on disk."""
    root = tmp_path_factory.mktemp("many")
    torch.manual_seed(0)
    model = build_model("small_cnn", n_bands=len(BANDS), n_classes=4)
    model_path = root / "model.pt"
    ClusterClassifier.from_model(
        model, arch="small_cnn", bands=BANDS, cutout_size=16, device="cpu"
    ).save(model_path)
    galaxies = {f"gal{i}": _write_galaxy(root, f"gal{i}", seed=i) for i in range(4)}
    return {"root": root, "model": model_path, "galaxies": galaxies}


def _jobs(field, names=None):
    return [
        GalaxyJob(name, catalog, images)
        for name, (catalog, images) in field["galaxies"].items()
        if names is None or name in names
    ]


def _broken_catalog(tmp_path):
    bad = tmp_path / "broken_cat.fits"
    bad.write_bytes(b"not a FITS file " * 20)
    return bad


def _manifest(path, rows, header="galaxy,catalog,images_dir"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _manifest_rows(field, root):
    """Manifest rows with paths relative to ``root`` (the manifest's directory)."""
    return [
        f"{name},{catalog.relative_to(root)},{images.relative_to(root)}"
        for name, (catalog, images) in field["galaxies"].items()
    ]


# -- serial --------------------------------------------------------------------


def test_serial_writes_outputs_identical_to_classify(field, tmp_path):
    out_dir = tmp_path / "out"  # created by classify_many
    results = classify_many(
        _jobs(field), field["model"], out_dir=out_dir, progress_bar=False, device="cpu"
    )
    assert list(results) == list(field["galaxies"])
    clf = ClusterClassifier.load(field["model"], device="cpu")
    for name, (catalog, images) in field["galaxies"].items():
        written = Table.read(out_dir / f"{name}_classified.fits")
        with MultiBandImage.from_fits(images) as imgs:
            direct = clf.classify(Table.read(catalog), imgs, origin=0, progress_bar=False)
        for col in PROB_COLUMNS + ["class_ml", "class_ml_flags"]:
            np.testing.assert_array_equal(results[name][col], direct[col])
            np.testing.assert_array_equal(written[col], direct[col])
        # The off-image candidate is not classified; the others are.
        assert (results[name]["class_ml"] == 0).sum() >= 1
        n_classified = int((results[name]["class_ml"] > 0).sum())
        assert n_classified >= N_CANDIDATES - 2
        regions = (out_dir / f"{name}_classes.reg").read_text()
        assert regions.count("circle(") == n_classified


def test_reference_band_outside_the_model_keeps_the_positions_grid(tmp_path):
    # The images' reference band (F555W, fine grid) is not a model band; the
    # model's bands are on a grid twice as coarse. Positions refer to F555W,
    # so a galaxy must be classified exactly as `classify` does on all bands.
    fine = make_wcs((120, 120))
    coarse = fine.deepcopy()
    coarse.wcs.cdelt = fine.wcs.cdelt * 2
    coarse.wcs.crpix = [30, 30]
    rng = np.random.default_rng(5)
    files = {}
    for band in BANDS:
        grid, shape = (fine, (120, 120)) if band == "F555W" else (coarse, (60, 60))
        files[band] = tmp_path / f"{band}.fits"
        fits.PrimaryHDU(rng.normal(size=shape).astype(np.float32), header=grid.to_header()).writeto(
            files[band]
        )
    bands = ("F275W", "F336W", "F438W", "F814W")
    torch.manual_seed(0)
    clf = ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=4, n_classes=4),
        arch="small_cnn",
        bands=bands,
        cutout_size=9,
        device="cpu",
    )
    catalog = Table({"PHANGS_X": [40.0, 60.0, 80.0], "PHANGS_Y": [50.0, 70.0, 30.0]})
    job = GalaxyJob("ref", catalog, files)  # F555W is the default reference band
    table = many.classify_galaxy(job, clf)
    with MultiBandImage.from_fits(files, reference_band="F555W") as images:
        direct = clf.classify(catalog, images, progress_bar=False)
    np.testing.assert_array_equal(table["prob_class1"], direct["prob_class1"])


def test_failed_galaxy_does_not_lose_the_others(field, tmp_path):
    jobs = _jobs(field, names={"gal0", "gal1"})
    jobs.insert(1, GalaxyJob("broken", _broken_catalog(tmp_path), jobs[0].images))
    with pytest.raises(ClassifyManyError) as info:
        classify_many(jobs, field["model"], out_dir=tmp_path, progress_bar=False, device="cpu")
    err = info.value
    assert list(err.results) == ["gal0", "gal1"]
    assert list(err.errors) == ["broken"]
    assert isinstance(err.errors["broken"], ValueError)
    message = str(err)
    assert "\n" not in message and "1 of 3 galaxies failed" in message and "broken" in message
    assert (tmp_path / "gal0_classified.fits").is_file()
    assert (tmp_path / "gal1_classes.reg").is_file()
    assert not (tmp_path / "broken_classified.fits").exists()


def test_existing_output_is_refused_before_any_work(field, tmp_path):
    (tmp_path / "gal1_classes.reg").write_text("# existing\n")
    with pytest.raises(FileExistsError, match="gal1_classes.reg"):
        classify_many(
            _jobs(field, names={"gal0", "gal1"}),
            field["model"],
            out_dir=tmp_path,
            progress_bar=False,
            device="cpu",
        )
    assert not (tmp_path / "gal0_classified.fits").exists()
    classify_many(
        _jobs(field, names={"gal0", "gal1"}),
        field["model"],
        out_dir=tmp_path,
        overwrite=True,
        regions=False,
        progress_bar=False,
        device="cpu",
    )
    assert (tmp_path / "gal1_classified.fits").is_file()
    assert (tmp_path / "gal1_classes.reg").read_text() == "# existing\n"


def test_in_memory_inputs_and_custom_out_path(field, tmp_path):
    catalog, images = field["galaxies"]["gal2"]
    arrays = MultiBandImage.from_fits(images, memmap=False)
    in_memory = MultiBandImage.from_arrays(
        {b: np.asarray(arrays[b]) for b in BANDS}, wcs=arrays.wcs()
    )
    table = Table.read(catalog)
    out = tmp_path / "custom.ecsv"
    jobs = [
        GalaxyJob("mem", table, in_memory, out=out, origin=0),
        GalaxyJob("files", catalog, images),
    ]
    results = classify_many(
        jobs,
        field["model"],
        progress_bar=False,
        device="cpu",
        classify_kwargs={"prefix": "m_"},
    )
    for col in [f"m_{c}" for c in PROB_COLUMNS]:
        np.testing.assert_array_equal(results["mem"][col], results["files"][col])
    assert out.is_file() and (tmp_path / "mem_classes.reg").is_file()
    # Without out_dir or job.out nothing is written for the second galaxy.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "custom.ecsv",
        "mem_classes.reg",
        "mem_done.json",
    ]
    assert "clusterclf" not in table.meta  # the caller's table is not modified


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            {"classify_kwargs": {"origin": 1}},
            TypeError,
            "origin and use are set per GalaxyJob",
        ),
        ({"duplicate": True}, ValueError, "unique; repeated: gal0"),
        ({"jobs": []}, ValueError, "no galaxies"),
        ({"model": "missing.pt"}, FileNotFoundError, "does not exist"),
    ],
)
def test_bad_arguments_fail_before_work(field, tmp_path, kwargs, exc, match):
    jobs = kwargs.pop("jobs", _jobs(field, names={"gal0"}))
    if kwargs.pop("duplicate", False):
        jobs = jobs * 2
    model = kwargs.pop("model", field["model"])
    with pytest.raises(exc, match=match):
        classify_many(jobs, model, out_dir=tmp_path, progress_bar=False, device="cpu", **kwargs)
    assert not list(tmp_path.glob("*_classified.fits"))


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_galaxy_name_must_be_a_file_name(name):
    with pytest.raises(ValueError, match="cannot be used in file names"):
        GalaxyJob(name, "cat.fits", "images")


def test_dask_path_refuses_in_memory_images_before_submitting(field):
    in_memory = MultiBandImage.from_arrays({b: np.zeros(SHAPE, np.float32) for b in BANDS})
    job = GalaxyJob("mem", Table({"x": [1.0], "y": [1.0]}), in_memory, origin=0)
    # The check happens before the client is used, so any object stands in for it.
    with pytest.raises(TypeError, match="cannot be sent to Dask workers"):
        classify_many([job], field["model"], client=object(), progress_bar=False)


def test_worker_cache_loads_once_and_checks_sha256(field):
    sha = ClusterClassifier.load(field["model"], device="cpu").sha256
    before = many._worker_model_loads()
    first = many._worker_classifier(field["model"], sha, "cpu")
    assert many._worker_classifier(field["model"], sha, "cpu") is first
    assert many._worker_model_loads() == before + 1
    with pytest.raises(CheckpointError, match="expected"):
        many._worker_classifier(field["model"], "0" * 64, "cpu")


# -- manifest ------------------------------------------------------------------


def test_read_manifest_resolves_relative_paths(field):
    root = field["root"]
    path = _manifest(
        root / "manifest.csv",
        [row + ",0" for row in _manifest_rows(field, root)],
        header="galaxy, catalog, images_dir, origin",
    )
    jobs = read_manifest(path)
    assert [j.name for j in jobs] == list(field["galaxies"])
    for job, (catalog, images) in zip(jobs, field["galaxies"].values(), strict=True):
        assert job.catalog.samefile(catalog) and job.images.samefile(images)
        assert job.origin == 0


@pytest.mark.parametrize(
    "header, rows, exc, match",
    [
        ("galaxy,catalog", ["g,c.fits"], ValueError, "lacks images_dir"),
        (
            "galaxy,catalog,images_dir,orgin",
            ["g,c,i,0"],
            ValueError,
            "unknown columns orgin",
        ),
        ("galaxy,catalog,images_dir", [], ValueError, "lists no galaxies"),
        (
            "galaxy,catalog,images_dir",
            ["g,nope.fits,nodir"],
            FileNotFoundError,
            "nope.fits, .*nodir",
        ),
        ("galaxy,catalog,images_dir", ["g,,x"], ValueError, "line 2: empty catalog"),
        (
            "galaxy,catalog,images_dir",
            ["g,a,b,c"],
            ValueError,
            "more fields than the header",
        ),
    ],
)
def test_read_manifest_errors(tmp_path, header, rows, exc, match):
    with pytest.raises(exc, match=match):
        read_manifest(_manifest(tmp_path / "m.csv", rows, header=header))


def test_read_manifest_bad_origin_and_duplicates(field, tmp_path):
    root = field["root"]
    row = _manifest_rows(field, root)[0]
    with pytest.raises(ValueError, match="origin '2' must be 0, 1 or empty"):
        read_manifest(
            _manifest(
                root / "m_origin.csv",
                [row + ",2"],
                header="galaxy,catalog,images_dir,origin",
            )
        )
    with pytest.raises(ValueError, match="repeats galaxies: gal0"):
        read_manifest(_manifest(root / "m_dup.csv", [row, row]))
    with pytest.raises(FileNotFoundError, match="manifest file"):
        read_manifest(tmp_path / "absent.csv")


# -- command line --------------------------------------------------------------


def test_cli_classify_many(field, tmp_path, capsys):
    root = field["root"]
    manifest = _manifest(root / "cli_manifest.csv", _manifest_rows(field, root)[:2])
    out_dir = tmp_path / "cli_out"
    args = [
        "classify-many",
        "--manifest",
        str(manifest),
        "--model",
        str(field["model"]),
        "--out-dir",
        str(out_dir),
        "--quiet",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "gal0_classes.reg",
        "gal0_classified.fits",
        "gal0_done.json",
        "gal1_classes.reg",
        "gal1_classified.fits",
        "gal1_done.json",
    ]
    assert "classified 2 galaxies" in capsys.readouterr().out
    # The same run again: both galaxies are verified by checksum and skipped.
    assert main(args) == 0
    assert "0 galaxies classified, 2 already done" in capsys.readouterr().out
    # An output changed since: not verified, and not replaced without --overwrite.
    with open(out_dir / "gal1_classes.reg", "a") as fh:
        fh.write("# edited\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gal1_classified.fits already exists" in err
    assert main(args + ["--overwrite"]) == 0


def test_cli_classify_many_bad_manifest_and_failed_galaxy(field, tmp_path, capsys):
    bad = _manifest(tmp_path / "bad.csv", ["g,c.fits"], header="galaxy,catalog")
    base = [
        "--model",
        str(field["model"]),
        "--out-dir",
        str(tmp_path / "o"),
        "--quiet",
        "--device",
        "cpu",
    ]
    assert main(["classify-many", "--manifest", str(bad), *base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks images_dir" in err

    catalog, images = field["galaxies"]["gal0"]
    broken = _broken_catalog(tmp_path)
    manifest = _manifest(
        tmp_path / "m.csv",
        [f"good,{catalog},{images}", f"broken,{broken.name},{images}"],
    )
    assert main(["classify-many", "--manifest", str(manifest), *base]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 2 galaxies failed" in err and "broken (" in err
    assert (tmp_path / "o" / "good_classified.fits").is_file()


# -- Dask ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_dask_identical_to_serial_one_load_per_worker(field, client, tmp_path):
    jobs = _jobs(field)
    serial = classify_many(jobs, field["model"], progress_bar=False, device="cpu")
    broken = GalaxyJob("broken", _broken_catalog(tmp_path), jobs[0].images)
    with pytest.raises(ClassifyManyError) as info:
        classify_many(
            [*jobs, broken],
            field["model"],
            client=client,
            out_dir=tmp_path,
            progress_bar=False,
            device="cpu",
        )
    on_dask = info.value.results
    assert list(info.value.errors) == ["broken"]
    assert list(on_dask) == list(serial)
    for name in serial:
        for col in PROB_COLUMNS + ["class_ml", "class_ml_qual", "class_ml_flags"]:
            np.testing.assert_array_equal(on_dask[name][col], serial[name][col])
        assert (tmp_path / f"{name}_classified.fits").is_file()
    loads = client.run(many._worker_model_loads)
    assert len(loads) == 2 and set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1
    # A second run on the same workers reuses their cached model.
    classify_many(
        jobs,
        field["model"],
        client=client,
        out_dir=tmp_path,
        overwrite=True,
        progress_bar=False,
        device="cpu",
    )
    assert client.run(many._worker_model_loads) == loads


@pytest.mark.slow
def test_cli_classify_many_on_scheduler(field, client, tmp_path):
    root = field["root"]
    manifest = _manifest(root / "dask_manifest.csv", _manifest_rows(field, root))
    out_dir = tmp_path / "dask_out"
    assert (
        main(
            [
                "classify-many",
                "--manifest",
                str(manifest),
                "--model",
                str(field["model"]),
                "--out-dir",
                str(out_dir),
                "--scheduler",
                client.scheduler.address,
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert len(list(out_dir.glob("*_classified.fits"))) == len(field["galaxies"])
    assert len(list(out_dir.glob("*_classes.reg"))) == len(field["galaxies"])


@pytest.mark.slow
def test_lost_worker_galaxy_fails_with_reason_and_a_rerun_does_only_the_rest(field, tmp_path):
    # A worker is killed while it holds a galaxy. With no retries allowed, that
    # galaxy is reported failed with its reason, the others are classified, no
    # output is partial; running the same jobs again redoes only the failed one.
    import os
    import signal
    import threading

    import dask

    distributed = pytest.importorskip("distributed")
    jobs = _jobs(field)
    out_dir = tmp_path / "out"
    outcome = {}

    def run(client):
        try:
            outcome["results"] = classify_many(
                jobs, field["model"], client=client, out_dir=out_dir, device="cpu"
            )
        except ClassifyManyError as exc:
            outcome["error"] = exc

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        thread = threading.Thread(target=run, args=(client,))
        thread.start()
        holding = {}
        while thread.is_alive() and not holding:
            holding = {
                w: keys
                for w, keys in client.processing().items()
                if any(str(k).startswith("clusterclf-") for k in keys)
            }
        assert holding, "the run ended before a worker could be killed"
        os.kill(pids[next(iter(holding))], signal.SIGKILL)
        thread.join(timeout=300)
    error = outcome["error"]
    assert set(error.results) | set(error.errors) == {job.name for job in jobs}
    assert error.errors and all(
        "KilledWorker" in type(exc).__name__ for exc in error.errors.values()
    )
    assert not [p for p in out_dir.iterdir() if ".part" in p.name]
    for name in error.errors:
        assert not list(out_dir.glob(f"{name}_*"))
    before = {}
    for name in error.results:
        files = [out_dir / f"{name}{s}" for s in ("_classified.fits", "_classes.reg", "_done.json")]
        before.update({p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files})
    # The rerun: done galaxies are verified by checksum and left alone.
    again = classify_many(jobs, field["model"], out_dir=out_dir, device="cpu")
    assert list(again) == [job.name for job in jobs]
    for path, (mtime, content) in before.items():
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == content
    for name in error.errors:
        assert (out_dir / f"{name}_done.json").is_file()
        np.testing.assert_array_equal(
            Table.read(out_dir / f"{name}_classified.fits")["class_ml"], again[name]["class_ml"]
        )
