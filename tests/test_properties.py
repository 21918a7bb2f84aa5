"""Property-based tests (hypothesis) of positions, cutouts and classification.

For any image size, cutout size and positions (finite, NaN, infinite,
masked, on and off the image):

* `extract_cutouts` returns, for every object, exactly the numpy slice of
  the image where the window is on the image and NaN where it is not, and
  flags that follow from the geometry alone;
* `ClusterClassifier.classify` returns one row per input row in input
  order, classifies exactly the rows without a not-classifiable flag, and
  raises nothing but the documented input errors.

The expected flags are computed here from the documented geometry (centre
pixel ``floor(p + 0.5)``, window ``c - S//2 ... c - S//2 + S - 1``), not
from the implementation.
"""

import math

import numpy as np
import pytest
import torch
from astropy.table import MaskedColumn, Table
from helpers import BANDS, NEW_COLUMNS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photutils_clusterclf import ClusterClassifier, MultiBandImage, build_model
from photutils_clusterclf._inference import InferenceEngine
from photutils_clusterclf.cutouts import (
    FLAG_INVALID_POSITION,
    FLAG_NAN,
    FLAG_NO_COVERAGE,
    FLAG_NO_OVERLAP,
    FLAG_PARTIAL,
    NOT_CLASSIFIABLE,
    extract_cutouts,
)

CUTOUT = 9
NAN_THRESHOLD = 0.25

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Coordinates: mostly near the image (edges included, halves included to
# exercise the rounding rule), some far off, some not finite.
near = st.floats(min_value=-15.0, max_value=45.0, allow_nan=False, width=64)
halves = st.integers(min_value=-12, max_value=40).map(lambda k: k + 0.5)
special = st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, -0.0, 0.0, -0.5, 0.49999, 1e-9])
coordinate = st.one_of(near, near, halves, special)


def _window(p, n, size):
    """(first index, window pixels on the image, centre on the image) on one axis."""
    centre = math.floor(p + 0.5)
    start = centre - size // 2
    on = max(0, min(start + size, n) - max(start, 0))
    return start, on, 0 <= centre < n


def expected_flags(x, y, shape, size, nan_threshold=NAN_THRESHOLD):
    """Flags from the geometry only, for images without NaN or zero pixels."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return FLAG_INVALID_POSITION
    ny, nx = shape
    # Far-off coordinates: any value beyond a few sizes behaves the same.
    x = min(max(x, -4.0 * size), nx + 4.0 * size)
    y = min(max(y, -4.0 * size), ny + 4.0 * size)
    _, on_x, centre_x = _window(x, nx, size)
    _, on_y, centre_y = _window(y, ny, size)
    on = on_x * on_y
    if on == 0:
        return FLAG_NO_OVERLAP
    flags = 0
    if on < size * size:
        flags |= FLAG_PARTIAL
    if size * size - on > nan_threshold * size * size:
        flags |= FLAG_NAN
    if not (centre_x and centre_y):
        flags |= FLAG_NO_COVERAGE
    return flags


def _images(shape, seed, dtype="<f4"):
    # Values in [1, 2): no NaN, no zeros, so only geometry sets flags.
    rng = np.random.default_rng(seed)
    return {band: rng.uniform(1.0, 2.0, shape).astype(dtype) for band in BANDS}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: tiny batches on a loaded 2-core machine otherwise
    spend most of their time in OpenMP spin-waits. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    model = build_model("small_cnn", n_bands=len(BANDS), n_classes=4)
    return ClusterClassifier.from_model(
        model, arch="small_cnn", bands=BANDS, cutout_size=CUTOUT, device="cpu"
    )


@st.composite
def cutout_case(draw):
    ny = draw(st.integers(1, 30))
    nx = draw(st.integers(1, 30))
    size = draw(st.integers(1, 12))
    n = draw(st.integers(0, 12))
    xs = draw(st.lists(coordinate, min_size=n, max_size=n))
    ys = draw(st.lists(coordinate, min_size=n, max_size=n))
    dtype = draw(st.sampled_from(["<f4", ">f4", ">f8", "<i2"]))
    return (ny, nx), size, np.array(xs, dtype=float), np.array(ys, dtype=float), dtype


@SETTINGS
@given(case=cutout_case(), seed=st.integers(0, 2**16))
def test_extract_cutouts_is_a_padded_numpy_slice(case, seed):
    shape, size, xs, ys, dtype = case
    arrays = _images(shape, seed, dtype)
    # A few NaN pixels: they must come through as NaN, not as padding flags.
    arrays["F336W"] = arrays["F336W"].astype(">f8")
    arrays["F336W"][0, 0] = np.nan
    batch = extract_cutouts(
        MultiBandImage.from_arrays(arrays), xs, ys, size=size, nan_threshold=1.0
    )
    assert batch.data.shape == (len(xs), len(BANDS), size, size)
    assert batch.data.dtype == np.float32 and batch.data.dtype.isnative
    assert batch.flags.shape == (len(xs),)
    ny, nx = shape
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if not (np.isfinite(x) and np.isfinite(y)):
            assert batch.flags[i] == FLAG_INVALID_POSITION
            continue
        x0, _, _ = _window(min(max(x, -4.0 * size), nx + 4.0 * size), nx, size)
        y0, _, _ = _window(min(max(y, -4.0 * size), ny + 4.0 * size), ny, size)
        rows = np.arange(y0, y0 + size)
        cols = np.arange(x0, x0 + size)
        on = ((rows >= 0) & (rows < ny))[:, None] & ((cols >= 0) & (cols < nx))[None, :]
        for b, band in enumerate(BANDS):
            want = np.full((size, size), np.nan, dtype=np.float32)
            if on.any():
                r = rows[(rows >= 0) & (rows < ny)]
                c = cols[(cols >= 0) & (cols < nx)]
                want[np.ix_((rows >= 0) & (rows < ny), (cols >= 0) & (cols < nx))] = arrays[band][
                    np.ix_(r, c)
                ].astype(np.float32)
            np.testing.assert_array_equal(batch.data[i, b], want)
        # nan_threshold=1 never sets FLAG_NAN; the NaN pixel at (0, 0) makes
        # an object centred there "no coverage".
        want_flags = expected_flags(x, y, shape, size, nan_threshold=1.0)
        if x0 + size // 2 == 0 and y0 + size // 2 == 0:
            want_flags |= FLAG_NO_COVERAGE
        assert batch.flags[i] == want_flags, (x, y, shape, size)


@SETTINGS
@given(
    case=cutout_case(),
    seed=st.integers(0, 2**16),
    threshold=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_extract_cutout_flags_follow_geometry(case, seed, threshold):
    shape, size, xs, ys, _ = case
    batch = extract_cutouts(_images(shape, seed), xs, ys, size=size, nan_threshold=threshold)
    want = [expected_flags(x, y, shape, size, threshold) for x, y in zip(xs, ys, strict=True)]
    np.testing.assert_array_equal(batch.flags, np.array(want, dtype=np.int16))
    # Objects off the image or at invalid positions are all NaN.
    gone = (batch.flags & (FLAG_NO_OVERLAP | FLAG_INVALID_POSITION)) != 0
    assert np.isnan(batch.data[gone]).all()
    inside = batch.flags == 0
    assert np.isfinite(batch.data[inside]).all()


@st.composite
def catalogue_case(draw):
    ny = draw(st.integers(1, 25))
    nx = draw(st.integers(1, 25))
    n = draw(st.integers(0, 10))
    xs = draw(st.lists(coordinate, min_size=n, max_size=n))
    ys = draw(st.lists(coordinate, min_size=n, max_size=n))
    masked = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    batch_size = draw(st.sampled_from([None, 1, 3, 64]))
    return (
        (ny, nx),
        np.array(xs, dtype=float),
        np.array(ys, dtype=float),
        np.array(masked, dtype=bool),
        batch_size,
    )


@SETTINGS
@given(case=catalogue_case(), seed=st.integers(0, 2**16))
def test_classify_one_row_per_input_row_and_flags_match_geometry(clf, case, seed):
    shape, xs, ys, masked, batch_size = case
    images = MultiBandImage.from_arrays(_images(shape, seed))
    ids = np.arange(len(xs)) * 7 + 3
    table = Table({"ID": ids, "PHANGS_X": MaskedColumn(xs, mask=masked), "PHANGS_Y": ys})
    out = clf.classify(table, images, batch_size=batch_size, progress_bar=False)

    assert len(out) == len(table)
    np.testing.assert_array_equal(out["ID"], ids)
    assert out.colnames == ["ID", "PHANGS_X", "PHANGS_Y", *NEW_COLUMNS]
    x_used = np.where(masked, np.nan, xs)
    want = np.array(
        [expected_flags(x, y, shape, CUTOUT) for x, y in zip(x_used, ys, strict=True)],
        dtype=np.int16,
    )
    np.testing.assert_array_equal(out["class_ml_flags"], want)

    classified = (want & NOT_CLASSIFIABLE) == 0
    assert np.all((out["class_ml"] > 0) == classified)
    assert set(np.asarray(out["class_ml"])) <= {0, 1, 2, 3, 4}
    probs = np.column_stack([out[f"prob_class{k}"] for k in (1, 2, 3, 4)])
    assert np.isnan(probs[~classified]).all()
    assert np.isnan(np.asarray(out["class_ml_qual"])[~classified]).all()
    if classified.any():
        good = probs[classified]
        assert np.all((good >= 0) & (good <= 1))
        np.testing.assert_allclose(good.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(out["class_ml"][classified], good.argmax(axis=1) + 1)
    assert out.meta["clusterclf"]["n"] == len(table)
    assert out.meta["clusterclf"]["n_classified"] == int(classified.sum())
    # The caller's table is not modified.
    assert table.colnames == ["ID", "PHANGS_X", "PHANGS_Y"]


@SETTINGS
@given(case=catalogue_case(), seed=st.integers(0, 2**16))
def test_classify_array_input_matches_table_input(clf, case, seed):
    shape, xs, ys, _, batch_size = case
    images = MultiBandImage.from_arrays(_images(shape, seed))
    from_table = clf.classify(
        Table({"PHANGS_X": xs, "PHANGS_Y": ys}),
        images,
        batch_size=batch_size,
        progress_bar=False,
    )
    from_array = clf.classify(np.column_stack([xs, ys]).reshape(-1, 2), images, progress_bar=False)
    for name in NEW_COLUMNS:
        np.testing.assert_array_equal(from_table[name], from_array[name])


# Inputs of the wrong kind: the only errors allowed are the documented ones.
junk = st.one_of(
    st.lists(st.floats(allow_nan=True), max_size=5).map(np.array),
    st.lists(
        st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
        min_size=1,
        max_size=4,
    ).map(np.array),
    st.lists(st.text(max_size=3), min_size=1, max_size=4).map(lambda v: np.column_stack([v, v])),
    st.builds(
        lambda v: Table({"PHANGS_X": v, "PHANGS_Y": v}),
        st.lists(st.text(max_size=3), min_size=1, max_size=3),
    ),
    st.builds(
        lambda v: Table({"x": v, "y": v}),
        st.lists(st.floats(-5, 30), min_size=1, max_size=3),
    ),
    st.builds(
        lambda v: Table({"flux": v}),
        st.lists(st.floats(-5, 30), min_size=1, max_size=3),
    ),
    st.none(),
    st.integers(),
)


@SETTINGS
@given(source=junk)
def test_bad_position_inputs_raise_only_documented_errors(clf, source):
    images = MultiBandImage.from_arrays(_images((12, 12), 0))
    try:
        out = clf.classify(source, images, progress_bar=False)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert message and "\n" not in message
    else:
        # Only well-formed inputs (e.g. digit strings in an (N, 2) array)
        # get through, and then row for row.
        assert len(out) == len(source)


# -- reproducibility -----------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(1)
    models = [build_model("small_cnn", n_bands=len(BANDS), n_classes=4) for _ in range(2)]
    ClusterClassifier.from_model(
        models, arch="small_cnn", bands=BANDS, cutout_size=CUTOUT, device="cpu"
    ).save(path)
    return path


def _field(seed=5, shape=(48, 64), n=30):
    rng = np.random.default_rng(seed)
    images = MultiBandImage.from_arrays(
        {band: rng.normal(0.0, 1.0, shape).astype(">f4") for band in BANDS}
    )
    # Some rows off the image or invalid, so that chunks mix both kinds.
    table = Table(
        {
            "PHANGS_X": rng.uniform(-10, shape[1] + 10, n),
            "PHANGS_Y": rng.uniform(-10, shape[0] + 10, n),
        }
    )
    table["PHANGS_X"][3] = np.nan
    return table, images


@pytest.mark.parametrize("tta, aggregate", [(False, "mean"), (True, "mode")])
def test_classify_reproducible_across_loads_batch_sizes_and_threads(saved_model, tta, aggregate):
    table, images = _field()
    runs = []
    for batch_size, threads in ((None, 1), (1, 1), (7, 1), (1000, 2)):
        # A fresh load each time: nothing carries over between runs.
        torch.set_num_threads(threads)
        clf = ClusterClassifier.load(saved_model, device="cpu")
        runs.append(
            clf.classify(
                table,
                images,
                tta=tta,
                aggregate=aggregate,
                batch_size=batch_size,
                progress_bar=False,
            )
        )
    first = runs[0]
    assert (first["class_ml"] > 0).sum() > 10
    for other in runs[1:]:
        np.testing.assert_array_equal(other["class_ml"], first["class_ml"])
        np.testing.assert_array_equal(other["class_ml_flags"], first["class_ml_flags"])
        for name in (
            "class_ml_qual",
            "prob_class1",
            "prob_class2",
            "prob_class3",
            "prob_class4",
        ):
            np.testing.assert_allclose(other[name], first[name], rtol=0, atol=1e-6)


def test_meta_records_what_is_needed_to_reproduce(saved_model):
    import astropy
    import torchvision

    import photutils_clusterclf
    from photutils_clusterclf.fileio import sha256_file

    table, images = _field()
    clf = ClusterClassifier.load(saved_model, device="cpu")
    out = clf.classify(
        table,
        images,
        tta=True,
        aggregate="mode",
        column_style="phangs",
        progress_bar=False,
    )
    meta = out.meta["clusterclf"]
    assert meta["version"] == photutils_clusterclf.__version__
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["versions"]["torchvision"] == torchvision.__version__
    assert meta["versions"]["astropy"] == astropy.__version__
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["model_sha256"] == sha256_file(saved_model)
    assert meta["model_members"] == 2 and meta["model_arch"] == "small_cnn"
    assert meta["bands"] == list(BANDS)
    assert meta["cutout_size"] == CUTOUT and meta["input_size"] == CUTOUT
    assert meta["normalization"] == clf.card.normalization
    assert meta["positions"] == "pixel columns PHANGS_X/PHANGS_Y (origin=0)"
    assert meta["n"] == len(table)
    # Re-running with nothing but the recorded options gives the same catalogue.
    again = ClusterClassifier.load(saved_model, device="cpu", sha256=meta["model_sha256"])
    assert list(again.bands) == meta["bands"]
    redo = again.classify(
        table,
        images,
        tta=meta["tta"],
        aggregate=meta["aggregate"],
        column_style=meta["column_style"],
        progress_bar=False,
    )
    for name in out.colnames:
        np.testing.assert_allclose(redo[name], out[name], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_classify_reproducible_in_a_fresh_process(saved_model, tmp_path):
    import os
    import subprocess
    import sys

    from astropy.io import fits

    from photutils_clusterclf.pipeline import classify_files

    table, images = _field()
    bands = {}
    for band in BANDS:
        bands[band] = tmp_path / f"{band}.fits"
        fits.PrimaryHDU(np.asarray(images[band])).writeto(bands[band])
    table.write(tmp_path / "cat.fits")
    here = classify_files(
        saved_model,
        tmp_path / "cat.fits",
        bands,
        tmp_path / "a.fits",
        device="cpu",
        progress_bar=False,
        tta=True,
    )
    argv = [
        sys.executable,
        "-m",
        "photutils_clusterclf.cli",
        "classify",
        "--model",
        str(saved_model),
        "--catalog",
        str(tmp_path / "cat.fits"),
        "--images",
        *(f"{b}={p}" for b, p in bands.items()),
        "--out",
        str(tmp_path / "b.fits"),
        "--tta",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(argv, check=True, capture_output=True, timeout=300, env=env)
    there = Table.read(tmp_path / "b.fits")
    np.testing.assert_array_equal(there["class_ml"], here["class_ml"])
    for k in (1, 2, 3, 4):
        np.testing.assert_allclose(
            there[f"prob_class{k}"], here[f"prob_class{k}"], rtol=0, atol=1e-6
        )


def test_forward_batches_are_full_for_sparse_catalogues(clf, monkeypatch):
    n, on = 2000, np.arange(0, 2000, 100)  # 1 % of the rows on the image
    x = np.full(n, 1e4)
    y = np.full(n, 1e4)
    x[on], y[on] = 12.0, 12.0
    sizes = []
    real = InferenceEngine.member_probs

    def member_probs(self, inputs, *, tta):
        sizes.append(len(inputs))
        return real(self, inputs, tta=tta)

    monkeypatch.setattr(InferenceEngine, "member_probs", member_probs)
    images = MultiBandImage.from_arrays(_images((25, 25), 0))
    out = clf.classify(np.column_stack([x, y]), images, batch_size=8, progress_bar=False)
    assert (out["class_ml"] > 0).sum() == on.size
    # "batch_size: objects per forward pass": 20 objects need 3 passes, not 20.
    assert len(sizes) == -(-on.size // 8), sizes
