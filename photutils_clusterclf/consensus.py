"""Consensus labels from several classifiers (experts or models).

`consensus_labels` combines the class columns of several labellers into one
consensus class per candidate, with the vote agreement and four class
probabilities, by

* ``method="majority"``: the class most labellers vote for; the
  probabilities are the vote fractions;
* ``method="dawid-skene"``: the maximum-likelihood labels of Dawid & Skene
  (1979, J. R. Stat. Soc. C 28, 20), which estimate, by
  expectation-maximisation, a 4 x 4 confusion matrix per labeller
  (P(label j | true class k)) and the class frequencies, and weight each
  labeller's vote by how reliable it is for each class. The probabilities
  are the posterior class probabilities of each candidate: soft labels
  that keep the doubt of the labellers (`dawid_skene` does the same on a
  plain array of votes).

Votes are folded onto the classes 1-4 with
`~photutils_clusterclf.classes.fold_classes` (PHANGS codes 5-19 -> 4 by
default). A folded 0 (LEGUS class 0 = not inspected, masked, NaN, unknown
codes) is a missing vote: the labeller is left out of that row, and the
agreement is counted among the labellers who voted. A row without any vote
gets ``consensus_class`` 0, ``consensus_n_votes`` 0 and NaN agreement and
probabilities.
"""

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.table import QTable
from astropy.utils.exceptions import AstropyUserWarning

from .classes import CLASSES, UNCLASSIFIED, fold_classes
from .utils.validation import check_choice, check_integer

__all__ = ["CONSENSUS_METHODS", "DawidSkeneResult", "consensus_labels", "dawid_skene"]

#: Accepted values of ``method``.
CONSENSUS_METHODS = ("majority", "dawid-skene")

#: Accepted values of ``ties`` (majority vote).
TIE_RULES = ("first", "none")

_K = len(CLASSES)


@dataclass(frozen=True)
class DawidSkeneResult:
    """Estimates of a Dawid-Skene fit (see `dawid_skene`).

    Attributes
    ----------
    posteriors : `numpy.ndarray`, shape (N, 4)
        P(true class = k | votes) for the classes 1-4; NaN rows where a
        candidate has no vote.
    confusion : `numpy.ndarray`, shape (L, 4, 4)
        Per labeller, P(label = column | true class = row); rows sum to 1.
    class_prior : `numpy.ndarray`, shape (4,)
        Estimated frequencies of the true classes 1-4.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the largest parameter change fell below ``tol``.
    log_likelihood : float
        Log-likelihood of the votes under the final parameters.
    """

    posteriors: np.ndarray
    confusion: np.ndarray
    class_prior: np.ndarray
    n_iter: int
    converged: bool
    log_likelihood: float


def _check_votes(votes):
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] == 0:
        raise ValueError(f"votes must have shape (N, L) with L >= 1 labellers, got {votes.shape}")
    if not np.isin(votes, (UNCLASSIFIED,) + CLASSES).all():
        bad = sorted(set(np.unique(votes).tolist()) - {UNCLASSIFIED, *CLASSES})
        raise ValueError(
            f"votes must be 0 (missing) or classes 1-4, found {bad[:5]}; "
            "fold catalogue codes with fold_classes first"
        )
    return votes.astype(np.int64)


def _vote_counts(votes):
    """(N, 4) number of votes for each class."""
    return np.stack([(votes == c).sum(axis=1) for c in CLASSES], axis=1)


def _check_positive(name, value):
    """``value`` as a float, or `ValueError` if it is not a positive finite number."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _log_joint(votes, log_confusion, log_prior):
    """(N, 4) log P(true class k, votes of row i)."""
    out = np.broadcast_to(log_prior, (votes.shape[0], _K)).copy()
    for lab in range(votes.shape[1]):
        given = votes[:, lab] > 0
        out[given] += log_confusion[lab][:, votes[given, lab] - 1].T
    return out


def dawid_skene(votes, *, smoothing=0.01, tol=1e-6, max_iter=5000):
    """Dawid-Skene estimates of the true classes and of each labeller's confusion matrix.

    Expectation-maximisation over the labellers' confusion matrices and the
    class frequencies, started from the majority vote (each candidate's vote
    fractions as its initial class probabilities, which fixes which class is
    which). Each M-step adds ``smoothing`` pseudo-votes to every cell of
    every confusion-matrix count and to every class count: the maximum a
    posteriori estimate under a symmetric Dirichlet(1 + ``smoothing``)
    prior, which keeps a class a labeller never used in the sample from
    having probability exactly 0 (and a log of minus infinity). The E-step
    assumes the labellers err independently given the true class.

    A single labeller cannot be checked against anyone: its votes are
    returned as the posteriors and its confusion matrix as the identity
    (the likelihood is the same for every confusion matrix that explains
    its label counts).

    Parameters
    ----------
    votes : array-like of int, shape (N, L)
        Class 1-4 given by labeller ``l`` to candidate ``i``; 0 = no vote.
    smoothing : float, optional
        Dirichlet pseudo-count (> 0). Small against the number of
        candidates per class: it matters only for rare classes.
    tol : float, optional
        Stop when no confusion-matrix entry or class frequency changes by
        more than this in one iteration.
    max_iter : int, optional
        At most this many EM iterations; an
        `~astropy.utils.exceptions.AstropyUserWarning` says when they were
        not enough.

    Returns
    -------
    `DawidSkeneResult`

    Raises
    ------
    ValueError
        On votes other than 0-4, no vote at all, or invalid options.
    """
    votes = _check_votes(votes)
    smoothing = _check_positive("smoothing", smoothing)
    tol = _check_positive("tol", tol)
    max_iter = check_integer("max_iter", max_iter)
    voted = (votes > 0).any(axis=1)
    if not voted.any():
        raise ValueError("no candidate has a vote (every vote is 0 / missing)")
    sub = votes[voted]
    counts = _vote_counts(sub)
    if votes.shape[1] == 1:
        return _single_labeller(votes.shape[0], voted, counts, smoothing)
    post, confusion, prior, n_iter, converged, log_likelihood = _em(
        sub, counts, smoothing=smoothing, tol=tol, max_iter=max_iter
    )
    posteriors = np.full((votes.shape[0], _K), np.nan)
    posteriors[voted] = post
    return DawidSkeneResult(
        posteriors=posteriors,
        confusion=confusion,
        class_prior=prior,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=log_likelihood,
    )


def _single_labeller(n_rows, voted, counts, smoothing):
    """Dawid-Skene of one labeller: nothing to compare it with, its votes are the labels."""
    posteriors = np.full((n_rows, _K), np.nan)
    posteriors[voted] = counts
    prior = (counts.sum(axis=0) + smoothing) / (counts.sum() + _K * smoothing)
    return DawidSkeneResult(
        posteriors=posteriors,
        confusion=np.eye(_K)[None],
        class_prior=prior,
        n_iter=0,
        converged=True,
        log_likelihood=float(np.log(prior) @ counts.sum(axis=0)),
    )


def _em(sub, counts, *, smoothing, tol, max_iter):
    """EM of the Dawid-Skene model on the candidates with votes (``sub``).

    Starts from the vote fractions ``counts``; returns the posteriors,
    confusion matrices, class prior, iterations run, whether it converged
    and the log-likelihood.
    """
    post = counts / counts.sum(axis=1, keepdims=True)
    onehot = [np.eye(_K + 1)[sub[:, lab]][:, 1:] for lab in range(sub.shape[1])]
    confusion = prior = None
    converged, change = False, np.inf
    for n_iter in range(1, max_iter + 1):
        # M-step: expected confusion counts and class frequencies.
        new_confusion = np.stack([post.T @ hot for hot in onehot]) + smoothing
        new_confusion /= new_confusion.sum(axis=2, keepdims=True)
        new_prior = post.sum(axis=0) + smoothing
        new_prior /= new_prior.sum()
        if confusion is not None:
            change = max(np.abs(new_confusion - confusion).max(), np.abs(new_prior - prior).max())
            converged = change < tol
        confusion, prior = new_confusion, new_prior
        # E-step: class posteriors of every candidate.
        log_joint = _log_joint(sub, np.log(confusion), np.log(prior))
        top = log_joint.max(axis=1, keepdims=True)
        post = np.exp(log_joint - top)
        norm = post.sum(axis=1, keepdims=True)
        post /= norm
        if converged:
            break
    if not converged:
        warnings.warn(
            f"Dawid-Skene EM did not converge in {max_iter} iterations "
            f"(last parameter change {change:.2g} > tol={tol}); "
            "raise max_iter or tol",
            AstropyUserWarning,
        )
    return post, confusion, prior, n_iter, converged, float((top + np.log(norm)).sum())


def _majority_class(votes, counts, ties):
    """Most-voted class of each row; ties broken by the first labeller voting a tied class."""
    top = counts.max(axis=1, keepdims=True)
    tied = (counts == top) & (top > 0)
    n_tied = tied.sum(axis=1)
    classes = np.where(n_tied == 1, tied.argmax(axis=1) + 1, UNCLASSIFIED)
    if ties == "first":
        # Walk the labellers backwards, so that the first one wins.
        for lab in range(votes.shape[1] - 1, -1, -1):
            vote = votes[:, lab]
            hit = (n_tied > 1) & (vote > 0)
            hit[hit] &= tied[hit, vote[hit] - 1]
            classes[hit] = vote[hit]
    return classes


def _check_columns(table, columns):
    if isinstance(columns, str) or not np.iterable(columns):
        raise TypeError(f"columns must be a list of column names, got {columns!r}")
    columns = list(columns)
    if not columns:
        raise ValueError("columns is empty: give the class columns of one or more labellers")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns are repeated in {columns}; give each labeller once")
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise KeyError(
            f"column(s) {', '.join(map(repr, missing))} not in the table; "
            "available: " + ", ".join(table.colnames)
        )
    return columns


def consensus_labels(
    table,
    *,
    columns,
    method="majority",
    mapping=None,
    ties="first",
    smoothing=0.01,
    tol=1e-6,
    max_iter=5000,
):
    """Consensus class of several labellers' class columns.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Catalogue with one class column per labeller (human experts or
        models; e.g. LEGUS ``class_human_mode``, ``class_ml``).
    columns : list of str
        The labellers' class columns, in order of precedence (see ``ties``).
    method : {"majority", "dawid-skene"}, optional
        Majority vote, or the Dawid-Skene estimate (`dawid_skene`), which
        learns how reliable each labeller is for each class.
    mapping : dict, optional
        Code folding of `~photutils_clusterclf.classes.fold_classes`
        (default: PHANGS codes 5-19 -> 4; anything that does not fold to
        1-4 is a missing vote).
    ties : {"first", "none"}, optional
        Majority vote only: when several classes have the most votes,
        ``"first"`` takes the vote of the first column (in ``columns``
        order) that voted for one of them, as a lead inspector decides;
        ``"none"`` gives class 0 (the probabilities still show the split).
        Dawid-Skene has no ties in practice; an exact tie of posteriors
        goes to the lower class.
    smoothing, tol, max_iter : optional
        Dawid-Skene only: see `dawid_skene`.

    Returns
    -------
    table : `~astropy.table.QTable`
        The input columns (a copy), followed by

        ``consensus_class``
            consensus class 1-4; 0 where nobody voted (or, with
            ``ties="none"``, on a tie).
        ``consensus_agreement``
            fraction of the labellers who voted on the row that voted for
            ``consensus_class`` (NaN where it is 0).
        ``consensus_n_votes``
            number of labellers who voted on the row.
        ``consensus_prob1`` ... ``consensus_prob4``
            class probabilities: vote fractions (majority) or posterior
            probabilities (Dawid-Skene; the soft labels); NaN without votes.

        ``meta["consensus"]`` records ``method``, ``columns`` and the
        options; with Dawid-Skene also ``confusion`` (column -> 4 x 4 list,
        P(label = column | true class = row)), ``class_prior``, ``n_iter``,
        ``converged`` and ``log_likelihood``. Existing ``consensus_*``
        columns are replaced, with a warning.

    Raises
    ------
    KeyError
        A column is not in the table.
    ValueError, TypeError
        Invalid ``columns``, ``method``, ``ties`` or Dawid-Skene options.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from photutils_clusterclf import consensus_labels
    >>> t = Table({"a": [1, 2, 3, 0], "b": [1, 2, 4, 0], "c": [2, 2, 7, 0]})
    >>> out = consensus_labels(t, columns=["a", "b", "c"])
    >>> out["consensus_class"].tolist(), out["consensus_n_votes"].tolist()
    ([1, 2, 4, 0], [3, 3, 3, 0])
    """
    check_choice("method", method, CONSENSUS_METHODS)
    check_choice("ties", ties, TIE_RULES)
    columns = _check_columns(table, columns)
    votes = np.stack([fold_classes(table[c], mapping=mapping) for c in columns], axis=1).astype(
        np.int64
    )
    counts = _vote_counts(votes)
    n_votes = counts.sum(axis=1)
    voted = n_votes > 0
    meta = {"method": method, "columns": columns}
    probs = np.full((len(votes), _K), np.nan)
    if method == "majority":
        classes = _majority_class(votes, counts, ties)
        probs[voted] = counts[voted] / n_votes[voted, None]
        meta["ties"] = ties
    elif not voted.any():
        classes = np.zeros(len(votes), dtype=np.int64)
    else:
        fit = dawid_skene(votes, smoothing=smoothing, tol=tol, max_iter=max_iter)
        probs = fit.posteriors
        classes = np.where(voted, np.nan_to_num(probs, nan=-1.0).argmax(axis=1) + 1, UNCLASSIFIED)
        meta.update(
            smoothing=float(smoothing),
            tol=float(tol),
            max_iter=int(max_iter),
            n_iter=fit.n_iter,
            converged=fit.converged,
            log_likelihood=fit.log_likelihood,
            confusion={c: fit.confusion[i].tolist() for i, c in enumerate(columns)},
            class_prior=fit.class_prior.tolist(),
        )
    decided = classes > 0
    agreement = np.full(len(votes), np.nan)
    agreement[decided] = counts[decided, classes[decided] - 1] / n_votes[decided]
    out = QTable(table, copy=True)
    new = {
        "consensus_class": classes.astype(np.int16),
        "consensus_agreement": agreement,
        "consensus_n_votes": n_votes.astype(np.int16),
    }
    new.update({f"consensus_prob{c}": probs[:, i] for i, c in enumerate(CLASSES)})
    for name, values in new.items():
        if name in out.colnames:
            warnings.warn(f"replacing existing column {name}", AstropyUserWarning)
        out[name] = values
    out.meta["consensus"] = meta
    return out
