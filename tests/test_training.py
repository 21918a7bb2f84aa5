"""Tests of `photutils_clusterclf.training`: training sets, the loop, checkpoints, resume."""

import re

import numpy as np
import pytest
import torch
from astropy.table import MaskedColumn, Table
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.preprocessing import Normalization
from photutils_clusterclf.training import TrainingSet, train_classifier

from helpers import BANDS

SIZE = 16


def _stamp(label, size, rng):
    """One noisy 5-band cutout whose morphology depends on the class.

    Class 1 a compact round source, 2 a broad one, 3 two separated peaks,
    4 no source: separable by a small network, whatever the orientation.
    """
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    if label == 1:
        img = np.exp(-(xx**2 + yy**2) / (2 * 1.0**2))
    elif label == 2:
        img = np.exp(-(xx**2 + yy**2) / (2 * 3.0**2))
    elif label == 3:
        img = np.exp(-((xx - 3) ** 2 + yy**2) / 2) + np.exp(-((xx + 3) ** 2 + yy**2) / 2)
    else:
        img = np.zeros((size, size))
    flux = rng.uniform(20, 40, size=(len(BANDS), 1, 1))
    return (flux * img + rng.normal(0, 1, size=(len(BANDS), size, size)) + 5).astype(np.float32)


def make_arrays(n=64, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.resize(np.array([1, 2, 3, 4]), n)
    labels = labels[rng.permutation(n)]
    cutouts = np.stack([_stamp(c, size, rng) for c in labels])
    return cutouts, labels


@pytest.fixture
def two_galaxies():
    cutouts, labels = make_arrays()
    galaxy = np.where(np.arange(labels.size) < 40, "NGC0001", "NGC0002")
    return TrainingSet(cutouts, labels, galaxy=galaxy, bands=BANDS)


# Tiny networks: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = dict(
    arch="small_cnn",
    weights=None,
    epochs=2,
    batch_size=16,
    lr=3e-3,
    progress_bar=False,
    device="cpu",
)


def _states(clf):
    return [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in clf.models]


def _assert_same(states_a, states_b):
    assert len(states_a) == len(states_b)
    for a, b in zip(states_a, states_b):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


def _max_diff(states_a, states_b):
    return max(
        float((a[k].double() - b[k].double()).abs().max())
        for a, b in zip(states_a, states_b)
        for k in a
        if a[k].is_floating_point()
    )


# -- TrainingSet ----------------------------------------------------------------


def test_training_set_from_arrays():
    cutouts, labels = make_arrays(n=12)
    cutouts[0, 1, 0, 0] = np.nan
    ts = TrainingSet(
        cutouts.astype(">f4"), labels, galaxy="NGC0628", bands=[b.lower() for b in BANDS]
    )
    assert ts.cutouts.dtype == np.dtype(np.float32) and ts.cutouts.dtype.isnative
    assert np.isnan(ts.cutouts[0, 1, 0, 0])  # raw: NaN kept, normalisation comes later
    assert ts.labels.dtype == np.int64
    assert ts.bands == BANDS and ts.size == SIZE and len(ts) == 12
    assert ts.galaxies == ["NGC0628"]
    assert ts.summary["classes"] == {str(c): int((labels == c).sum()) for c in (1, 2, 3, 4)}
    assert sum(ts.summary["n_excluded"].values()) == 0
    assert "12 objects" in repr(ts)


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0, 1, 2, 3], "classes 1-4"),
        ([1, 2, 5, 3], "classes 1-4"),
        ([1, 2, 3], "shape"),
    ],
)
def test_training_set_rejects_bad_labels(labels, message):
    cutouts, _ = make_arrays(n=4)
    with pytest.raises(ValueError, match=message):
        TrainingSet(cutouts, labels, bands=BANDS)


def test_training_set_rejects_bad_shapes():
    cutouts, labels = make_arrays(n=4)
    with pytest.raises(ValueError, match="N, B, S, S"):
        TrainingSet(cutouts[:, :, :, :8], labels, bands=BANDS)
    with pytest.raises(ValueError, match="band names"):
        TrainingSet(cutouts, labels, bands=BANDS[:3])
    with pytest.raises(ValueError, match="size=20"):
        TrainingSet(cutouts, labels, bands=BANDS, size=20)


def test_training_set_save_load(tmp_path, two_galaxies):
    path = tmp_path / "set.npz"
    two_galaxies.cutouts[3, 0, 2, 2] = np.nan
    two_galaxies.save(path)
    loaded = TrainingSet.load(path)
    np.testing.assert_array_equal(loaded.cutouts, two_galaxies.cutouts)
    np.testing.assert_array_equal(loaded.labels, two_galaxies.labels)
    np.testing.assert_array_equal(loaded.galaxy, two_galaxies.galaxy)
    assert loaded.bands == two_galaxies.bands and loaded.size == two_galaxies.size
    assert loaded.summary == two_galaxies.summary
    assert loaded.fingerprint() == two_galaxies.fingerprint()
    with pytest.raises(FileExistsError):
        two_galaxies.save(path)
    two_galaxies.save(path, overwrite=True)
    # Plain arrays only: readable without pickles.
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_training_set_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        TrainingSet.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        TrainingSet.load(bad)


def _galaxy(rng, n_side=6, spacing=40, size=SIZE):
    """Images with sources on a grid and a PHANGS-like catalogue of them."""
    shape = (n_side * spacing, n_side * spacing)
    arrays = {b: rng.normal(5, 1, shape).astype(np.float32) for b in BANDS}
    xs, ys = np.meshgrid(
        np.arange(n_side) * spacing + spacing // 2, np.arange(n_side) * spacing + spacing // 2
    )
    xs, ys = xs.ravel().astype(float), ys.ravel().astype(float)
    classes = np.resize(np.array([1, 2, 3, 4]), xs.size)
    half = size // 2
    for x, y, c in zip(xs.astype(int), ys.astype(int), classes):
        stamp = _stamp(c, size, rng) - 5
        for i, b in enumerate(BANDS):
            arrays[b][y - half : y + half, x - half : x + half] += stamp[i]
    return MultiBandImage.from_arrays(arrays), xs, ys, classes


def test_training_set_from_galaxies_counts_exclusions():
    rng = np.random.default_rng(1)
    images, xs, ys, classes = _galaxy(rng)
    codes = classes.astype(float)
    codes[0] = 0  # unlabelled
    codes[1] = 13  # PHANGS triple -> 4
    codes[2] = np.nan  # unlabelled
    codes[3] = 5  # PHANGS pair -> 4
    xs = xs.copy()
    xs[4] = 1e5  # off the image: not classifiable
    xs[5] = np.nan  # invalid position
    cat = Table(
        {
            "PHANGS_X": xs,
            "PHANGS_Y": ys,
            "PHANGS_CLUSTER_CLASS_HUMAN": MaskedColumn(codes, mask=np.arange(xs.size) == 6),
        }
    )
    images2, xs2, ys2, classes2 = _galaxy(rng, n_side=4)
    cat2 = Table({"PHANGS_X": xs2, "PHANGS_Y": ys2, "PHANGS_CLUSTER_CLASS_HUMAN": classes2})
    with pytest.warns(AstropyUserWarning, match="2 labelled candidates left out"):
        ts = TrainingSet.from_galaxies(
            [(cat, images, "NGC1"), {"catalog": cat2, "images": images2, "name": "NGC2"}],
            label_column="PHANGS_CLUSTER_CLASS_HUMAN",
            cutout_size=SIZE,
            progress_bar=False,
        )
    assert ts.galaxies == ["NGC1", "NGC2"]
    g1 = ts.summary["galaxies"]["NGC1"]
    assert g1["n_rows"] == 36
    assert g1["n_excluded"] == {
        "unlabelled": 3,
        "invalid_position": 1,
        "no_overlap": 1,
        "no_coverage": 0,
    }
    assert g1["n_objects"] == 36 - 5
    assert ts.summary["n_objects"] == len(ts) == 31 + 16
    assert ts.summary["n_excluded"]["unlabelled"] == 3
    assert set(np.unique(ts.labels)) <= {1, 2, 3, 4}
    # Codes 13 and 5 became class 4; rows 0, 2, 4, 5, 6 are gone.
    kept = np.array([1, 3] + list(range(7, 36)))
    expected = np.where(np.isin(codes[kept], [5, 13]), 4, codes[kept]).astype(int)
    np.testing.assert_array_equal(ts.labels[ts.galaxy == "NGC1"], expected)
    assert ts.cutouts.shape == (47, 5, SIZE, SIZE) and ts.cutouts.dtype == np.float32
    # The cutout of a kept source is centred on it (the peak of a class-1 source).
    row = int(np.flatnonzero(ts.labels == 1)[0])
    assert np.unravel_index(ts.cutouts[row, 3].argmax(), (SIZE, SIZE)) in {
        (7, 7),
        (7, 8),
        (8, 7),
        (8, 8),
    }


def test_training_set_from_galaxies_errors():
    rng = np.random.default_rng(2)
    images, xs, ys, classes = _galaxy(rng, n_side=2)
    cat = Table({"PHANGS_X": xs, "PHANGS_Y": ys, "class_mode": classes})
    with pytest.raises(KeyError, match="label column 'CLASS'.*class_mode"):
        TrainingSet.from_galaxies([(cat, images)], label_column="CLASS", progress_bar=False)
    with pytest.raises(ValueError, match="unique"):
        TrainingSet.from_galaxies(
            [(cat, images, "A"), (cat, images, "A")], label_column="class_mode", progress_bar=False
        )
    with pytest.raises(TypeError, match="each galaxy"):
        TrainingSet.from_galaxies([cat], label_column="class_mode", progress_bar=False)


# -- training -------------------------------------------------------------------


def test_train_returns_classifier_with_card(tmp_path, two_galaxies):
    records = []
    clf = train_classifier(two_galaxies, log=records.append, **FAST)
    assert isinstance(clf, ClusterClassifier) and clf.n_members == 1
    card = clf.card
    assert card.arch == "small_cnn" and tuple(card.bands) == BANDS
    assert card.cutout_size == SIZE and card.input_size == SIZE
    assert card.normalization == Normalization("asinh_shared").to_dict()
    training = card.training
    assert training["galaxies"] == ["NGC0001", "NGC0002"]
    assert training["seeds"] == [0]
    assert training["counts"] == two_galaxies.summary
    # Default split with two galaxies: the one whose share is closest to val_fraction.
    assert training["validation"]["mode"] == "galaxy"
    assert training["validation"]["galaxies"] == ["NGC0002"]
    assert training["validation"]["n_val"] == 24
    log = training["members"][0]["log"]
    assert log == records and [r["epoch"] for r in log] == [1, 2]
    for r in log:
        assert {"train_loss", "val_loss", "val_recall", "val_macro_recall", "lr", "seconds"} <= set(
            r
        )
        assert len(r["val_recall"]) == 4 and np.isfinite(r["train_loss"])
    best = training["members"][0]["best_epoch"]
    macros = [r["val_macro_recall"] for r in log]
    assert best == 1 + int(np.argmax(macros))
    probs = clf.predict_proba(two_galaxies.cutouts)
    assert probs.shape == (len(two_galaxies), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    # The provenance survives a checkpoint round trip, and so do the predictions.
    clf.save(tmp_path / "model.pt")
    loaded = ClusterClassifier.load(tmp_path / "model.pt", device="cpu")
    assert loaded.card.training == training
    np.testing.assert_allclose(loaded.predict_proba(two_galaxies.cutouts), probs, atol=1e-6)


def test_training_is_reproducible_and_leaves_global_rng_alone(two_galaxies):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = train_classifier(two_galaxies, seed=7, augment=True, **FAST)
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.are_deterministic_algorithms_enabled()
    b = train_classifier(two_galaxies, seed=7, augment=True, **FAST)
    _assert_same(_states(a), _states(b))
    assert (
        a.card.training["members"][0]["log"][-1]["train_loss"]
        == b.card.training["members"][0]["log"][-1]["train_loss"]
    )
    c = train_classifier(two_galaxies, seed=8, augment=True, **FAST)
    assert _max_diff(_states(a), _states(c)) > 1e-3


def test_ensemble_members_use_consecutive_seeds(two_galaxies):
    opts = dict(FAST, epochs=1)
    ens = train_classifier(two_galaxies, n_models=2, seed=3, **opts)
    assert ens.n_members == 2 and ens.card.training["seeds"] == [3, 4]
    single = train_classifier(two_galaxies, seed=4, **opts)
    _assert_same(_states(ens)[1:], _states(single))
    assert _max_diff(_states(ens)[:1], _states(single)) > 1e-3


class _Crash(Exception):
    pass


def test_resume_gives_the_uninterrupted_weights(tmp_path, two_galaxies):
    opts = dict(FAST, epochs=3, augment=True, n_models=2, patience=None)
    reference = train_classifier(two_galaxies, **opts)

    def crash(record):
        if record["member"] == 1 and record["epoch"] == 1:
            raise _Crash

    with pytest.raises(_Crash):
        train_classifier(two_galaxies, checkpoint_dir=tmp_path, log=crash, **opts)
    state = torch.load(tmp_path / "member1.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and len(state["log"]) == 1
    records = []
    resumed = train_classifier(
        two_galaxies, checkpoint_dir=tmp_path, resume=True, log=records.append, **opts
    )
    # Member 0 had finished: not retrained; member 1 ran epochs 2 and 3 only.
    assert [(r["member"], r["epoch"]) for r in records] == [(1, 2), (1, 3)]
    _assert_same(_states(resumed), _states(reference))
    assert resumed.card.training["members"][1]["epochs_run"] == 3


def test_resume_extends_training(tmp_path, two_galaxies):
    opts = dict(FAST, patience=None)
    reference = train_classifier(two_galaxies, **dict(opts, epochs=2))
    train_classifier(two_galaxies, checkpoint_dir=tmp_path, **dict(opts, epochs=1))
    extended = train_classifier(
        two_galaxies, checkpoint_dir=tmp_path, resume=True, **dict(opts, epochs=2)
    )
    _assert_same(_states(extended), _states(reference))


def test_resume_refuses_other_options_or_data(tmp_path, two_galaxies):
    train_classifier(two_galaxies, checkpoint_dir=tmp_path, **dict(FAST, epochs=1))
    with pytest.raises(ValueError, match="different options.*lr"):
        train_classifier(
            two_galaxies, checkpoint_dir=tmp_path, resume=True, **dict(FAST, epochs=2, lr=0.1)
        )
    other = TrainingSet(
        two_galaxies.cutouts[::-1].copy(),
        two_galaxies.labels[::-1].copy(),
        galaxy=two_galaxies.galaxy,
        bands=BANDS,
    )
    with pytest.raises(ValueError, match="another training set"):
        train_classifier(other, checkpoint_dir=tmp_path, resume=True, **dict(FAST, epochs=2))
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_classifier(two_galaxies, resume=True, **FAST)


def test_training_learns_a_separable_problem():
    cutouts, labels = make_arrays(n=96, seed=5)
    ts = TrainingSet(cutouts, labels, bands=BANDS)
    clf = train_classifier(ts, **dict(FAST, epochs=8, val_fraction=0, augment=False))
    predicted = clf.predict_proba(ts.cutouts).argmax(axis=1) + 1
    assert (predicted == ts.labels).mean() > 0.8
    log = clf.card.training["members"][0]["log"]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert clf.card.training["validation"]["mode"] == "none"


def test_frozen_backbone_trains_only_stem_and_head(two_galaxies):
    torch.manual_seed(0)
    from photutils_clusterclf.models import build_model

    initial = build_model("small_cnn", n_bands=5, n_classes=4).state_dict()
    clf = train_classifier(two_galaxies, freeze_backbone_epochs=1, **dict(FAST, epochs=1))
    final = clf.models[0].state_dict()
    changed = {
        k
        for k in initial
        if initial[k].is_floating_point()
        and "running" not in k
        and not torch.equal(initial[k], final[k].cpu())
    }
    assert changed == {"features.0.weight", "classifier.1.weight", "classifier.1.bias"}


def test_validation_split_options(two_galaxies):
    clf = train_classifier(two_galaxies, val_galaxy="NGC0001", **dict(FAST, epochs=1))
    split = clf.card.training["validation"]
    assert split["galaxies"] == ["NGC0001"] and split["n_val"] == 40 and split["n_train"] == 24
    with pytest.raises(ValueError, match="NGC9999"):
        train_classifier(two_galaxies, val_galaxy="NGC9999", **FAST)
    with pytest.raises(ValueError, match="leaves no training"):
        train_classifier(two_galaxies, val_galaxy=["NGC0001", "NGC0002"], **FAST)
    one = TrainingSet(two_galaxies.cutouts, two_galaxies.labels, bands=BANDS)
    split = train_classifier(one, val_fraction=0.25, **dict(FAST, epochs=1)).card.training[
        "validation"
    ]
    assert split["mode"] == "stratified" and split["n_val"] == 16  # 4 of each class


def test_balanced_sampler_and_option_errors(two_galaxies):
    clf = train_classifier(two_galaxies, class_balance="sampler", **dict(FAST, epochs=1))
    assert clf.card.training["options"]["class_balance"] == "sampler"
    with pytest.raises(ValueError, match="class_balance"):
        train_classifier(two_galaxies, class_balance="oversample", **FAST)
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(two_galaxies, **dict(FAST, epochs=0))
    with pytest.raises(ValueError, match="too small"):
        train_classifier(two_galaxies, **dict(FAST, arch="resnet18"))
    with pytest.raises(TypeError, match="TrainingSet"):
        train_classifier(two_galaxies.cutouts, **FAST)


def test_missing_imagenet_weights_warn_or_raise():
    cutouts, labels = make_arrays(n=16, size=32)
    ts = TrainingSet(cutouts, labels, bands=BANDS)
    opts = dict(FAST, arch="resnet18", weights="imagenet", epochs=1, batch_size=8, val_fraction=0)
    with pytest.warns(AstropyUserWarning, match="ImageNet weights not found at .*resnet18.*random"):
        clf = train_classifier(ts, **opts)
    assert clf.card.training["options"]["weights"] is None
    with pytest.raises(FileNotFoundError, match="resnet18"):
        train_classifier(ts, require_pretrained=True, **opts)


def test_training_progress_lines_round_the_recall(two_galaxies, capsys):
    # The per-epoch lines of a log are read by people: 3 decimals, not 17.
    train_classifier(two_galaxies, **{**FAST, "progress_bar": True})
    recalls = re.findall(r"recall=([0-9.]+)", capsys.readouterr().err)
    assert recalls and all(len(r.partition(".")[2]) == 3 for r in recalls)
