"""Training on soft labels (class probabilities, e.g. a Dawid-Skene consensus)."""

import numpy as np
import pytest
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf import consensus_labels
from photutils_clusterclf.training import TrainingSet, train_classifier

from helpers import BANDS
from test_training import FAST, SIZE, _galaxy, _max_diff, _states, make_arrays

PROBS = [f"consensus_prob{k}" for k in (1, 2, 3, 4)]


# Tiny networks: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_one_hot_soft_labels_train_like_hard_labels():
    """Soft labels that are certain give the hard-label loss and weights; doubt changes them."""
    cutouts, labels = make_arrays(n=48)
    hard = TrainingSet(cutouts, labels, bands=BANDS)
    one_hot = TrainingSet(cutouts, labels, bands=BANDS, soft_labels=np.eye(4)[labels - 1])
    opts = dict(FAST, epochs=1, seed=0, val_fraction=0)
    a, b = train_classifier(hard, **opts), train_classifier(one_hot, **opts)
    assert _max_diff(_states(a), _states(b)) < 1e-5
    log_a, log_b = (clf.card.training["members"][0]["log"][0] for clf in (a, b))
    assert log_b["train_loss"] == pytest.approx(log_a["train_loss"], rel=1e-5)
    doubtful = TrainingSet(
        cutouts, labels, bands=BANDS, soft_labels=0.6 * np.eye(4)[labels - 1] + 0.1
    )
    c = train_classifier(doubtful, **opts)
    assert _max_diff(_states(a), _states(c)) > 1e-3
    assert hard.fingerprint() != one_hot.fingerprint() != doubtful.fingerprint()


def test_soft_labels_from_consensus_columns(tmp_path):
    """from_galaxies takes the consensus probabilities of the rows it keeps, in order."""
    rng = np.random.default_rng(2)
    images, xs, ys, classes = _galaxy(rng)
    votes = {
        f"h{k}": np.where(rng.random(xs.size) < 0.8, classes, rng.integers(1, 5, xs.size))
        for k in (1, 2, 3)
    }
    cat = Table({"PHANGS_X": xs, "PHANGS_Y": ys, **votes})
    for name in votes:
        cat[name][0] = 0  # nobody voted: consensus class 0, left out
    cat["PHANGS_X"][1] = 1e5  # off the image: left out
    cat = consensus_labels(cat, columns=list(votes), method="dawid-skene")
    with pytest.warns(AstropyUserWarning, match="1 labelled candidates left out"):
        ts = TrainingSet.from_galaxies(
            [(cat, images, "NGC1")],
            label_column="consensus_class",
            soft_label_columns=PROBS,
            cutout_size=SIZE,
            progress_bar=False,
        )
    expected = np.stack([np.asarray(cat[p]) for p in PROBS], axis=1)[2:]
    np.testing.assert_allclose(ts.soft_labels, expected, rtol=1e-6)
    np.testing.assert_array_equal(ts.labels, np.asarray(cat["consensus_class"])[2:])
    assert ts.summary["soft_label_columns"] == PROBS
    ts.save(tmp_path / "soft.npz")
    back = TrainingSet.load(tmp_path / "soft.npz")
    np.testing.assert_array_equal(back.soft_labels, ts.soft_labels)
    assert back.fingerprint() == ts.fingerprint()
    clf = train_classifier(ts, **dict(FAST, epochs=1, val_fraction=0))
    assert clf.card.training["counts"]["soft_label_columns"] == PROBS


@pytest.mark.parametrize(
    "soft, match",
    [
        (np.full((8, 3), 1 / 3), r"shape \(8, 4\)"),
        (np.full((8, 4), 0.3), "rows sum to 1"),
        (np.tile([1.2, -0.2, 0, 0], (8, 1)), "non-negative"),
        (np.tile([np.nan, 1, 0, 0], (8, 1)), "finite"),
    ],
)
def test_bad_soft_labels(soft, match):
    cutouts, labels = make_arrays(n=8)
    with pytest.raises(ValueError, match=match):
        TrainingSet(cutouts, labels, bands=BANDS, soft_labels=soft)


def test_bad_soft_label_columns():
    rng = np.random.default_rng(3)
    images, xs, ys, classes = _galaxy(rng, n_side=3)
    cat = Table(
        {
            "PHANGS_X": xs,
            "PHANGS_Y": ys,
            "label": classes,
            **{p: np.full(xs.size, 0.25) for p in PROBS},
        }
    )
    kwargs = {"label_column": "label", "cutout_size": SIZE, "progress_bar": False}
    with pytest.raises(ValueError, match="must name 4 columns"):
        TrainingSet.from_galaxies([(cat, images)], soft_label_columns=PROBS[:3], **kwargs)
    with pytest.raises(KeyError, match="'nope' not in the catalogue of galaxy0"):
        TrainingSet.from_galaxies(
            [(cat, images)], soft_label_columns=PROBS[:3] + ["nope"], **kwargs
        )
    cat["consensus_prob2"][4] = np.nan  # a labelled row without probabilities
    with pytest.raises(ValueError, match="finite"):
        TrainingSet.from_galaxies([(cat, images)], soft_label_columns=PROBS, **kwargs)
