"""The torch thread count: validation, the package default, the API and ``--num-threads``."""

import os
import sys

import pytest
import torch

from photutils_clusterclf import num_threads, set_num_threads
from photutils_clusterclf._threads import (
    apply_num_threads,
    default_num_threads,
    parse_num_threads,
)
from photutils_clusterclf.cli import main


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "value, expected", [(3, 3), ("2", 2), (" 4 ", 4), ("auto", None), ("AUTO", None), (None, None)]
)
def test_parse_num_threads_accepts(value, expected):
    assert parse_num_threads(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "-2", "two", "", 1.5, "1.5", True])
def test_parse_num_threads_refuses(value):
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        parse_num_threads(value)


@pytest.mark.parametrize(
    "busy, cpus, torch_default, expected",
    [
        (0, 2, 2, 2),  # idle: torch's default
        (1, 2, 2, 1),  # one competing process on 2 cores: 1 thread
        (7, 2, 2, 1),  # overloaded: never below 1
        (3, 16, 8, 8),  # many free CPUs: never above torch's default (physical cores)
        (10, 16, 8, 6),
    ],
)
def test_default_leaves_out_busy_cpus(busy, cpus, torch_default, expected):
    assert default_num_threads(busy=busy, cpus=cpus, torch_default=torch_default) == expected


def test_default_respects_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_num_threads(busy=0, cpus=2, torch_default=2) == 3


def test_set_num_threads_reaches_torch_and_returns_the_previous_value():
    torch.set_num_threads(2)
    assert set_num_threads(1) == 2
    assert torch.get_num_threads() == 1
    assert set_num_threads("auto") == 1
    assert 1 <= torch.get_num_threads() <= (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="positive integer"):
        set_num_threads(0)


def test_apply_without_torch_goes_through_the_environment(monkeypatch):
    # Before torch is imported (the commands' lazy path) the count is left in
    # OMP_NUM_THREADS, which torch reads when it starts.
    monkeypatch.delitem(sys.modules, "torch")
    apply_num_threads("3")
    assert os.environ["OMP_NUM_THREADS"] == "3"
    monkeypatch.delenv("OMP_NUM_THREADS")
    apply_num_threads("auto")
    assert 1 <= int(os.environ["OMP_NUM_THREADS"]) <= (os.cpu_count() or 1)


def test_apply_with_torch_sets_torch(monkeypatch):
    torch.set_num_threads(2)
    apply_num_threads(1)
    assert torch.get_num_threads() == 1 and "OMP_NUM_THREADS" not in os.environ


def test_context_manager_restores_after_an_error():
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError), num_threads(1) as used:
        assert used == 1 and torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_cli_num_threads_reaches_torch(tmp_path, capsys):
    # The demo refuses a foreign directory before any work: the thread
    # count is set by then.
    (tmp_path / "notes.txt").write_text("mine")
    torch.set_num_threads(2)
    assert main(["demo", "--out", str(tmp_path), "--quiet", "--num-threads", "1"]) == 2
    assert torch.get_num_threads() == 1
    capsys.readouterr()


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["train", "--galaxy", "c.fits=d", "--label-column", "L", "--out", "m.pt"],
        [
            "classify",
            "--model",
            "m.pt",
            "--catalog",
            "c.fits",
            "--images-dir",
            "d",
            "--out",
            "o.fits",
        ],
        ["classify-many", "--manifest", "m.csv", "--model", "m.pt", "--out-dir", "o"],
    ],
)
def test_cli_refuses_a_bad_thread_count(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--num-threads", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--num-threads" in err and "positive integer or 'auto'" in err
    assert len(err.strip().splitlines()) == 1


def test_seeded_training_is_identical_with_the_same_thread_count():
    """What the docs promise: same data, seed, options and thread count -> same weights."""
    from test_training import FAST, _assert_same, _states, make_arrays

    from photutils_clusterclf.training import TrainingSet, train_classifier

    cutouts, labels = make_arrays(n=48)
    training_set = TrainingSet(cutouts, labels, bands=("F275W", "F336W", "F438W", "F555W", "F814W"))
    for threads in (1, 2):
        with num_threads(threads):
            a = train_classifier(training_set, seed=5, **FAST)
            b = train_classifier(training_set, seed=5, **FAST)
        _assert_same(_states(a), _states(b))
