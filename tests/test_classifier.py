import numpy as np
import pytest
import torch
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table
from helpers import BANDS, NEW_COLUMNS, make_wcs

from photutils_clusterclf import ClusterClassifier, MultiBandImage, build_model
from photutils_clusterclf.classifier import aggregate_members
from photutils_clusterclf.cutouts import (
    FLAG_INVALID_POSITION,
    FLAG_NO_OVERLAP,
    FLAG_PARTIAL,
    extract_cutouts,
)
from photutils_clusterclf.models import resolve_device


def make_images(shape=(90, 110), seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    arrays = {}
    for i, band in enumerate(BANDS):
        img = rng.normal(0, 0.05, shape)
        for x0, y0 in [(30, 40), (70, 20), (55, 60)]:
            img += (1 + i) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.5**2))
        arrays[band] = img.astype(np.float32)
    return MultiBandImage.from_arrays(arrays, wcs=make_wcs(shape))


def make_classifier(n_members=1, cutout_size=15, seed=0):
    models = []
    for k in range(n_members):
        torch.manual_seed(seed + k)
        models.append(build_model("small_cnn", n_bands=len(BANDS), n_classes=4))
    return ClusterClassifier.from_model(
        models, arch="small_cnn", bands=BANDS, cutout_size=cutout_size, device="cpu"
    )


@pytest.fixture(scope="module")
def images():
    return make_images()


@pytest.fixture(scope="module")
def clf():
    return make_classifier()


def catalog():
    return Table(
        {
            "ID": [1, 2, 3, 4, 5, 6],
            "PHANGS_X": [30.0, 70.0, 55.0, 2.0, 500.0, np.nan],
            "PHANGS_Y": [40.0, 20.0, 60.0, 3.0, 20.0, 10.0],
        }
    )


def test_classify_adds_exactly_the_columns_and_keeps_rows(images, clf):
    cat = catalog()
    before = cat.copy()
    out = clf.classify(cat, images, progress_bar=False)
    assert isinstance(out, QTable)
    assert out.colnames == cat.colnames + list(NEW_COLUMNS)
    assert list(out["ID"]) == [1, 2, 3, 4, 5, 6]
    assert cat.colnames == before.colnames  # caller's table untouched
    assert out["class_ml"].dtype == np.int16 and out["class_ml_flags"].dtype == np.int16
    for name in NEW_COLUMNS[1:6]:
        assert out[name].dtype == np.float32
    probs = np.stack([out[f"prob_class{k}"] for k in (1, 2, 3, 4)], axis=1)
    ok = out["class_ml"] > 0
    np.testing.assert_allclose(probs[ok].sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(out["class_ml"][ok], probs[ok].argmax(axis=1) + 1)
    np.testing.assert_allclose(out["class_ml_qual"][ok], probs[ok].max(axis=1))


def test_edge_off_image_and_nan_rows_are_flagged_not_dropped(images, clf):
    out = clf.classify(catalog(), images, progress_bar=False)
    flags = np.asarray(out["class_ml_flags"])
    assert flags[3] & FLAG_PARTIAL and out["class_ml"][3] > 0
    assert flags[4] & FLAG_NO_OVERLAP and out["class_ml"][4] == 0
    assert flags[5] & FLAG_INVALID_POSITION and out["class_ml"][5] == 0
    assert np.isnan(out["prob_class1"][4]) and np.isnan(out["class_ml_qual"][5])
    assert np.all(flags[:3] == 0)


def test_copy_false_adds_columns_in_place(images, clf):
    cat = QTable(catalog())
    out = clf.classify(cat, images, progress_bar=False, copy=False)
    assert out is cat and "class_ml" in cat.colnames


def test_predict_proba_matches_classify(images, clf):
    cat = catalog()[:3]
    out = clf.classify(cat, images, progress_bar=False)
    cut = extract_cutouts(
        images,
        np.asarray(cat["PHANGS_X"]),
        np.asarray(cat["PHANGS_Y"]),
        size=clf.card.cutout_size,
        bands=BANDS,
    )
    probs = clf.predict_proba(cut)
    np.testing.assert_allclose(probs[:, 0], out["prob_class1"], atol=1e-6)
    np.testing.assert_allclose(probs[:, 3], out["prob_class4"], atol=1e-6)


def test_batch_size_does_not_change_results(images, clf):
    a = clf.classify(catalog(), images, batch_size=1, progress_bar=False)
    b = clf.classify(catalog(), images, batch_size=64, progress_bar=False)
    np.testing.assert_allclose(a["prob_class2"], b["prob_class2"], atol=1e-6, equal_nan=True)


def test_tta_makes_probabilities_rotation_invariant(images, clf):
    # Rotating the image by 90 degrees and the positions with it leaves the
    # test-time-averaged probabilities unchanged (odd cutout, integer centres).
    rotated = MultiBandImage.from_arrays({b: np.rot90(images[b]).copy() for b in BANDS})
    ny, nx = images.shape()
    x = np.array([30.0, 70.0, 55.0])
    y = np.array([40.0, 20.0, 60.0])
    # np.rot90 maps (y, x) -> (nx - 1 - x, y).
    a = clf.classify(np.column_stack([x, y]), images, tta=True, progress_bar=False)
    b = clf.classify(np.column_stack([y, nx - 1 - x]), rotated, tta=True, progress_bar=False)
    for k in (1, 2, 3, 4):
        np.testing.assert_allclose(a[f"prob_class{k}"], b[f"prob_class{k}"], atol=1e-5)
    c = clf.classify(np.column_stack([y, nx - 1 - x]), rotated, tta=False, progress_bar=False)
    assert not np.allclose(a["prob_class1"], c["prob_class1"], atol=1e-7)


def test_skycoord_and_array_inputs_match_pixel_table(images, clf):
    cat = catalog()[:3]
    ref = clf.classify(cat, images, progress_bar=False)
    sky = images.wcs().pixel_to_world(cat["PHANGS_X"], cat["PHANGS_Y"])
    assert isinstance(sky, SkyCoord)
    out_sky = clf.classify(sky, images, progress_bar=False)
    out_arr = clf.classify(
        np.column_stack([cat["PHANGS_X"], cat["PHANGS_Y"]]), images, progress_bar=False
    )
    for out in (out_sky, out_arr):
        np.testing.assert_allclose(out["prob_class3"], ref["prob_class3"], atol=1e-6)
        np.testing.assert_allclose(out["x_center"], cat["PHANGS_X"], atol=1e-6)


def test_phangs_column_style_and_prefix(images, clf):
    out = clf.classify(catalog(), images, column_style="phangs", progress_bar=False)
    assert "PHANGS_CLUSTER_CLASS_ML_SMALLCNN" in out.colnames
    assert "PHANGS_CLUSTER_CLASS_ML_SMALLCNN_QUAL" in out.colnames
    out = clf.classify(catalog(), images, column_style="phangs", tag="vgg", progress_bar=False)
    assert "PHANGS_CLUSTER_CLASS_ML_VGG_QUAL" in out.colnames
    out = clf.classify(catalog(), images, prefix="cnn_", progress_bar=False)
    assert "cnn_class_ml" in out.colnames and "cnn_prob_class4" in out.colnames
    with pytest.raises(ValueError, match="column_style"):
        clf.classify(catalog(), images, column_style="legus")


def test_provenance_in_meta(images, clf):
    out = clf.classify(catalog(), images, progress_bar=False)
    meta = out.meta["clusterclf"]
    assert meta["bands"] == list(BANDS)
    assert meta["model_arch"] == "small_cnn"
    assert "PHANGS_X" in meta["positions"]
    assert "Wei et al. 2020" in meta["citation"]
    assert set(meta["versions"]) >= {"torch", "astropy", "numpy"}


def test_empty_catalog_gives_empty_columns(images, clf):
    out = clf.classify(catalog()[:0], images, progress_bar=False)
    assert len(out) == 0 and out.colnames[-7:] == list(NEW_COLUMNS)


def test_missing_band_is_a_clear_error(images, clf):
    fewer = images.select(BANDS[1:])
    with pytest.raises(ValueError, match="F275W"):
        clf.classify(catalog(), fewer, progress_bar=False)


def test_save_load_round_trip(tmp_path, images):
    clf = make_classifier(n_members=2)
    sha = clf.save(tmp_path / "m.pt")
    loaded = ClusterClassifier.load(tmp_path / "m.pt", device="cpu")
    assert loaded.n_members == 2 and loaded.sha256 == sha
    a = clf.classify(catalog(), images, progress_bar=False)
    b = loaded.classify(catalog(), images, progress_bar=False)
    np.testing.assert_array_equal(a["prob_class1"], b["prob_class1"])
    assert b.meta["clusterclf"]["model_sha256"] == sha


def test_ensemble_mode_gives_vote_fraction(images):
    clf = make_classifier(n_members=3)
    out = clf.classify(catalog(), images, aggregate="mode", progress_bar=False)
    ok = out["class_ml"] > 0
    assert set(np.round(np.asarray(out["class_ml_qual"][ok]) * 3).astype(int)) <= {1, 2, 3}


def test_aggregate_members_mean_and_mode():
    member = np.array(
        [
            [[0.6, 0.4, 0, 0], [0.1, 0.2, 0.3, 0.4]],
            [[0.6, 0.4, 0, 0], [0.1, 0.2, 0.3, 0.4]],
            [[0.0, 1.0, 0, 0], [0.1, 0.2, 0.3, 0.4]],
        ],
        dtype=np.float32,
    )
    probs, classes, qual = aggregate_members(member, aggregate="mean")
    np.testing.assert_allclose(probs[0], [0.4, 0.6, 0, 0])
    assert list(classes) == [2, 4] and qual[0] == pytest.approx(0.6)
    probs, classes, qual = aggregate_members(member, aggregate="mode")
    assert list(classes) == [1, 4]  # two of three members vote 1
    np.testing.assert_allclose(qual, [2 / 3, 1.0])
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_members(member, aggregate="median")


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_positions_stay_on_the_reference_grid_when_the_model_skips_that_band():
    # F555W (the reference) is on a fine grid; the model's bands are all on a
    # grid with twice the pixel size, so positions must go through the WCS.
    fine = make_wcs((120, 120))
    coarse = fine.deepcopy()
    coarse.wcs.cdelt = fine.wcs.cdelt * 2
    coarse.wcs.crpix = [30, 30]
    rng = np.random.default_rng(5)
    arrays = {b: rng.normal(size=(60, 60)).astype(np.float32) for b in BANDS if b != "F555W"}
    arrays["F555W"] = rng.normal(size=(120, 120)).astype(np.float32)
    wcs = {b: coarse for b in arrays}
    wcs["F555W"] = fine
    images = MultiBandImage.from_arrays(arrays, wcs=wcs, reference_band="F555W")
    bands = ("F275W", "F336W", "F438W", "F814W")
    torch.manual_seed(0)
    clf = ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=4, n_classes=4),
        arch="small_cnn",
        bands=bands,
        cutout_size=9,
        device="cpu",
    )
    x = np.array([40.0, 60.0, 80.0])
    y = np.array([50.0, 70.0, 30.0])
    out = clf.classify(np.column_stack([x, y]), images, progress_bar=False)
    expected = clf.predict_proba(extract_cutouts(images, x, y, size=9, bands=bands))
    np.testing.assert_allclose(out["prob_class1"], expected[:, 0], atol=1e-6)
    assert np.all(out["class_ml_flags"] == 0)
