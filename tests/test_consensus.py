"""Consensus labels: majority vote and Dawid-Skene on labels of known confusion matrices."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf import consensus_labels
from photutils_clusterclf.cli import main
from photutils_clusterclf.consensus import dawid_skene
from photutils_clusterclf.datasets import HUMAN_LABEL_NOISE, noisy_labels

#: P(label = column | true = row) of five simulated labellers of different
#: skill and bias: the package's human-like noise, a good expert, a
#: uniform-noise labeller, one who merges 1 into 2 and 3 into 4, and one
#: with the transposed (differently biased) human noise.
LABELLERS = np.array(
    [
        HUMAN_LABEL_NOISE,
        [
            [0.90, 0.05, 0.03, 0.02],
            [0.10, 0.80, 0.05, 0.05],
            [0.05, 0.10, 0.75, 0.10],
            [0.02, 0.03, 0.05, 0.90],
        ],
        np.full((4, 4), 0.1) + 0.6 * np.eye(4),
        [
            [0.60, 0.30, 0.05, 0.05],
            [0.05, 0.85, 0.05, 0.05],
            [0.05, 0.05, 0.60, 0.30],
            [0.05, 0.05, 0.10, 0.80],
        ],
        HUMAN_LABEL_NOISE.T / HUMAN_LABEL_NOISE.T.sum(axis=1, keepdims=True),
    ]
)
CLASS_MIX = (0.3, 0.2, 0.2, 0.3)


def simulate_votes(n, matrices, seed):
    """True classes and one noisy vote per labeller (columns)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice([1, 2, 3, 4], size=n, p=CLASS_MIX)
    votes = np.stack([noisy_labels(truth, m, rng) for m in matrices], axis=1)
    return truth, votes


def test_dawid_skene_recovers_the_confusion_matrices():
    """Each estimated entry is within 4.5 binomial standard errors of the truth.

    The error of an estimated P(label j | true k) from n_k objects of class
    k is at least the binomial sqrt(p (1 - p) / n_k); 4.5 sigma over the 80
    entries is a false-alarm probability of 5e-4 (Bonferroni). The class
    frequencies are checked the same way.
    """
    n = 4000
    truth, votes = simulate_votes(n, LABELLERS, seed=11)
    fit = dawid_skene(votes)
    assert fit.converged
    n_k = np.bincount(truth, minlength=5)[1:]
    sigma = np.sqrt(LABELLERS * (1 - LABELLERS) / n_k[None, :, None])
    assert fit.confusion.shape == LABELLERS.shape
    np.testing.assert_allclose(fit.confusion.sum(axis=2), 1.0)
    assert np.all(np.abs(fit.confusion - LABELLERS) < 4.5 * sigma)
    mix = np.array(CLASS_MIX)
    assert np.all(np.abs(fit.class_prior - mix) < 4.5 * np.sqrt(mix * (1 - mix) / n))
    np.testing.assert_allclose(fit.posteriors.sum(axis=1), 1.0)


def test_dawid_skene_beats_the_majority_vote():
    """Three labellers of unequal skill: DS is right more often than the majority.

    Paired comparison (McNemar): among the objects where exactly one of the
    two is right, DS must win by more than 3 standard deviations.
    """
    truth, votes = simulate_votes(3000, LABELLERS[:3], seed=5)
    table = Table(votes, names=["a", "b", "c"])
    ds = consensus_labels(table, columns=["a", "b", "c"], method="dawid-skene")
    mv = consensus_labels(table, columns=["a", "b", "c"], method="majority")
    ds_ok = np.asarray(ds["consensus_class"]) == truth
    mv_ok = np.asarray(mv["consensus_class"]) == truth
    wins, losses = np.sum(ds_ok & ~mv_ok), np.sum(mv_ok & ~ds_ok)
    assert wins - losses > 3 * np.sqrt(wins + losses)
    # Both beat the human-like labeller alone.
    assert mv_ok.mean() > np.mean(votes[:, 0] == truth)
    meta = ds.meta["consensus"]
    assert meta["method"] == "dawid-skene" and meta["converged"]
    assert list(meta["confusion"]) == ["a", "b", "c"]
    assert np.asarray(meta["confusion"]["b"]).shape == (4, 4)


def test_majority_vote_fractions_agreement_and_folding():
    table = Table({"a": [1, 2, 3, 9, 1], "b": [1, 2, 4, 4, 0], "c": [2, 3, 4, 17, 0]})
    out = consensus_labels(table, columns=["a", "b", "c"])
    assert out["consensus_class"].tolist() == [1, 2, 4, 4, 1]  # PHANGS 9 and 17 -> 4
    assert out["consensus_n_votes"].tolist() == [3, 3, 3, 3, 1]
    np.testing.assert_allclose(out["consensus_agreement"], [2 / 3, 2 / 3, 2 / 3, 1, 1])
    probs = np.stack([out[f"consensus_prob{k}"] for k in (1, 2, 3, 4)], axis=1)
    np.testing.assert_allclose(probs[0], [2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert out.colnames[:3] == ["a", "b", "c"]  # the input columns are kept


def test_majority_ties():
    """A tie goes to the first column that voted for a tied class, or to 0."""
    table = Table({"a": [1, 0, 3, 1], "b": [2, 2, 4, 2], "c": [0, 3, 1, 2]})
    first = consensus_labels(table, columns=["a", "b", "c"])
    # row 0: 1 vs 2 -> a; row 1: a missing -> b; row 2: three-way -> a; row 3: 2 wins.
    assert first["consensus_class"].tolist() == [1, 2, 3, 2]
    reordered = consensus_labels(table, columns=["b", "a", "c"])
    assert reordered["consensus_class"].tolist() == [2, 2, 4, 2]
    none = consensus_labels(table, columns=["a", "b", "c"], ties="none")
    assert none["consensus_class"].tolist() == [0, 0, 0, 2]
    assert np.isnan(none["consensus_agreement"][:3]).all()
    np.testing.assert_allclose(none["consensus_prob1"][:3], [0.5, 0, 1 / 3])


@pytest.mark.parametrize("method", ["majority", "dawid-skene"])
def test_missing_votes(method):
    """Class 0, masked and NaN votes are missing; a row without votes has class 0 and NaN."""
    table = Table(
        {
            "a": MaskedColumn([1, 2, 3, 4, 1, 0], mask=[0, 0, 0, 0, 0, 1]),
            "b": [1.0, 2.0, 3.0, 4.0, np.nan, np.nan],
            "c": [1, 2, 3, 4, 0, 0],
        }
    )
    out = consensus_labels(table, columns=["a", "b", "c"], method=method)
    assert out["consensus_class"].tolist() == [1, 2, 3, 4, 1, 0]
    assert out["consensus_n_votes"].tolist() == [3, 3, 3, 3, 1, 0]
    assert out["consensus_agreement"][4] == 1.0
    last = [out[f"consensus_prob{k}"][5] for k in (1, 2, 3, 4)]
    assert np.isnan(last).all() and np.isnan(out["consensus_agreement"][5])


def test_no_votes_at_all():
    table = Table({"a": [0, 0], "b": [0, 0]})
    for method in ("majority", "dawid-skene"):
        out = consensus_labels(table, columns=["a", "b"], method=method)
        assert out["consensus_class"].tolist() == [0, 0]
        assert np.isnan(out["consensus_prob2"]).all()
    with pytest.raises(ValueError, match="no candidate has a vote"):
        dawid_skene(np.zeros((3, 2), dtype=int))


def test_single_labeller():
    """One labeller: both methods return its labels (DS cannot check it against anyone)."""
    _truth, votes = simulate_votes(500, LABELLERS[:1], seed=2)
    table = Table({"only": votes[:, 0]})
    for method in ("majority", "dawid-skene"):
        out = consensus_labels(table, columns=["only"], method=method)
        assert out["consensus_class"].tolist() == votes[:, 0].tolist()
        assert np.all(out["consensus_agreement"] == 1)
    np.testing.assert_array_equal(out.meta["consensus"]["confusion"]["only"], np.eye(4))
    expected = np.bincount(votes[:, 0], minlength=5)[1:] / len(votes)
    np.testing.assert_allclose(out.meta["consensus"]["class_prior"], expected, atol=1e-4)


def test_dawid_skene_smoothing_keeps_unused_classes_finite():
    """A labeller who never says 2 still gets a finite, positive P(2 | k)."""
    _truth, votes = simulate_votes(400, LABELLERS[:3], seed=4)
    votes[votes[:, 1] == 2, 1] = 1
    fit = dawid_skene(votes, smoothing=0.5, max_iter=5000)
    assert fit.converged and np.all(fit.confusion[1][:, 1] > 0)
    assert np.isfinite(fit.log_likelihood)
    more = dawid_skene(votes, smoothing=2.0, max_iter=5000)
    assert np.all(fit.confusion[1][:, 1] < more.confusion[1][:, 1])


def test_dawid_skene_warns_without_convergence():
    _truth, votes = simulate_votes(300, LABELLERS[:3], seed=1)
    with pytest.warns(AstropyUserWarning, match="did not converge in 2 iterations"):
        fit = dawid_skene(votes, max_iter=2)
    assert not fit.converged and fit.n_iter == 2


def test_replacing_consensus_columns_warns():
    table = Table({"a": [1, 2], "b": [1, 3], "consensus_class": [4, 4]})
    with pytest.warns(AstropyUserWarning, match="replacing existing column consensus_class"):
        out = consensus_labels(table, columns=["a", "b"])
    assert out["consensus_class"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"columns": "a"}, TypeError, "list of column names"),
        ({"columns": []}, ValueError, "columns is empty"),
        ({"columns": ["a", "a"]}, ValueError, "repeated"),
        ({"columns": ["a", "zz"]}, KeyError, "'zz' not in the table; available: a, b"),
        ({"columns": ["a", "b"], "method": "mean"}, ValueError, "'majority', 'dawid-skene'"),
        ({"columns": ["a", "b"], "ties": "random"}, ValueError, "'first', 'none'"),
        (
            {"columns": ["a", "b"], "method": "dawid-skene", "smoothing": 0},
            ValueError,
            "smoothing must be a positive finite number",
        ),
        (
            {"columns": ["a", "b"], "method": "dawid-skene", "max_iter": 2.5},
            ValueError,
            "max_iter must be an integer >= 1",
        ),
    ],
)
def test_bad_input_messages(kwargs, error, match):
    table = Table({"a": [1, 2], "b": [2, 2]})
    with pytest.raises(error, match=match):
        consensus_labels(table, **kwargs)


def test_dawid_skene_rejects_unfolded_votes():
    with pytest.raises(ValueError, match=r"found \[7\]; fold catalogue codes"):
        dawid_skene([[1, 7], [2, 2]])
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        dawid_skene([1, 2, 3])


def test_cli_consensus(tmp_path, capsys):
    _truth, votes = simulate_votes(200, LABELLERS[:3], seed=3)
    cat = tmp_path / "labels.ecsv"
    Table({"id": np.arange(200), "h1": votes[:, 0], "h2": votes[:, 1], "h3": votes[:, 2]}).write(
        cat
    )
    out = tmp_path / "consensus.fits"
    argv = [
        "consensus",
        "--catalog",
        str(cat),
        "--columns",
        "h1",
        "h2",
        "h3",
        "--method",
        "dawid-skene",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "200 of 200 candidates have a class" in capsys.readouterr().out
    written = Table.read(out)
    expected = consensus_labels(Table.read(cat), columns=["h1", "h2", "h3"], method="dawid-skene")
    assert written["consensus_class"].tolist() == expected["consensus_class"].tolist()
    np.testing.assert_allclose(written["consensus_prob3"], expected["consensus_prob3"])
    # No clobbering without --overwrite; a bad column is one line and status 2.
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    capsys.readouterr()
    bad = [
        "consensus",
        "--catalog",
        str(cat),
        "--columns",
        "h1",
        "h9",
        "--out",
        str(tmp_path / "x.ecsv"),
    ]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "'h9' not in the table" in err and err.count("\n") == 1
    assert not (tmp_path / "x.ecsv").exists()
