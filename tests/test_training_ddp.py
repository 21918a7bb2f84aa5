"""DistributedDataParallel training: two CPU processes (gloo) under torch.distributed.run."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from photutils_clusterclf.training import TrainingSet, train_classifier

from helpers import BANDS
from test_training import make_arrays

OPTIONS = dict(
    arch="small_cnn",
    weights=None,
    epochs=2,
    batch_size=16,
    lr=1e-3,
    augment=True,
    progress_bar=False,
    device="cpu",
)

SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    from photutils_clusterclf.training import TrainingSet, train_classifier
    torch.set_num_threads(1)
    training_set = TrainingSet.load(sys.argv[1])
    clf = train_classifier(training_set, checkpoint_dir=sys.argv[3], **{options!r})
    temperature = clf.temperature
    clf.temperature = 1.0  # the networks' own probabilities are compared
    torch.save({{"state": clf.models[0].state_dict(),
                 "probs": torch.from_numpy(clf.predict_proba(training_set.cutouts)),
                 "training": clf.card.training, "temperature": temperature}},
               os.path.join(sys.argv[2], f"rank{{os.environ['RANK']}}.pt"))
""")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    cutouts, labels = make_arrays(n=64)
    galaxy = np.where(np.arange(labels.size) < 40, "NGC0001", "NGC0002")
    training_set = TrainingSet(cutouts, labels, galaxy=galaxy, bands=BANDS)
    training_set.save(tmp_path / "set.npz")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(options=OPTIONS))
    (tmp_path / "out").mkdir()
    (tmp_path / "ckpt").mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            str(script),
            str(tmp_path / "set.npz"),
            str(tmp_path / "out"),
            str(tmp_path / "ckpt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # Only rank 0 writes the training state.
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["member0.pt"]
    # Both ranks end with the same network and the same log.
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert ranks[0]["training"]["world_size"] == 2
    logs = [r["training"]["members"][0]["log"] for r in ranks]
    assert [{k: v for k, v in rec.items() if k != "seconds"} for rec in logs[0]] == [
        {k: v for k, v in rec.items() if k != "seconds"} for rec in logs[1]
    ]

    # Both ranks calibrate on the whole validation galaxy (each holds half of it).
    calibrations = [r["training"]["calibration"] for r in ranks]
    assert calibrations[0] == calibrations[1]

    torch.set_num_threads(1)
    single = train_classifier(training_set, **OPTIONS)
    # ... and fit the temperature one process does (up to the BatchNorm difference below).
    single_calibration = single.card.training["calibration"]
    assert calibrations[0]["method"] == single_calibration["method"] != "none"
    assert calibrations[0]["n_objects"] == single_calibration["n_objects"] == 24
    assert (
        calibrations[0]["temperature"]
        == ranks[0]["temperature"]
        == pytest.approx(single.temperature, rel=0.05)
    )
    other_seed = train_classifier(training_set, seed=1, **OPTIONS)
    single.temperature = other_seed.temperature = 1.0
    assert single.card.training["world_size"] == 1
    probs = single.predict_proba(training_set.cutouts)
    ddp_vs_single = np.abs(ranks[0]["probs"].numpy() - probs).max()
    seed_vs_seed = np.abs(other_seed.predict_proba(training_set.cutouts) - probs).max()
    # Same global batches, augmentations and gradient normalisation as one
    # process; the only difference on the CPU is BatchNorm statistics per
    # rank (SyncBatchNorm needs GPUs), far below the spread between seeds.
    assert ddp_vs_single < 0.01
    assert ddp_vs_single < 0.1 * seed_vs_seed
    single_log = single.card.training["members"][0]["log"]
    for rec_ddp, rec_single in zip(logs[0], single_log):
        assert rec_ddp["train_loss"] == pytest.approx(rec_single["train_loss"], abs=0.1)
