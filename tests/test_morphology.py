"""Tests of the morphology branch: its measurements, the fused network, training and I/O."""

import numpy as np
import pytest
import torch
from helpers import BANDS, run_cli

from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.models import build_model
from photutils_clusterclf.morphology import (
    MORPHOLOGY_RADII,
    MorphologyFusion,
    morphology_features,
    n_morphology_features,
)
from photutils_clusterclf.preprocessing import DIHEDRAL_TRANSFORMS, dihedral
from photutils_clusterclf.training import TrainingOptions, TrainingSet, train_classifier

SIZE = 32
# Column of each quantity in morphology_features (see its docstring).
_N_BANDS = len(BANDS)
_MOMENTS_5PX = _N_BANDS * len(MORPHOLOGY_RADII) + (_N_BANDS - 1) + 3 + 3
_ELLIPTICITY_5PX = _MOMENTS_5PX + 1
_ASYMMETRY = n_morphology_features(_N_BANDS) - 1


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(sigma_y, sigma_x, *, centre=(SIZE // 2, SIZE // 2), n=1, noise=0.0, seed=0):
    """(n, 5, S, S) Gaussian sources with colours, optionally noisy."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.exp(
        -((yy - centre[0]) ** 2) / (2 * sigma_y**2) - (xx - centre[1]) ** 2 / (2 * sigma_x**2)
    )
    colours = np.array([0.5, 1.0, 2.0, 3.0, 4.0])[:, None, None]
    rng = np.random.default_rng(seed)
    data = colours * image + noise * rng.normal(size=(n, _N_BANDS, SIZE, SIZE))
    return torch.tensor(data, dtype=torch.float32)


def test_features_shape_finite_and_dihedral_invariant():
    x = _source(1.5, 3.0, n=4, noise=0.3)
    f = morphology_features(x)
    assert f.shape == (4, n_morphology_features(_N_BANDS))
    assert torch.isfinite(f).all()
    assert torch.isfinite(morphology_features(torch.zeros(2, _N_BANDS, SIZE, SIZE))).all()
    for k in range(DIHEDRAL_TRANSFORMS):
        torch.testing.assert_close(morphology_features(dihedral(x, k)), f, atol=1e-4, rtol=1e-4)


def test_features_measure_elongation_and_asymmetry():
    round_, elongated = _source(1.5, 1.5), _source(1.0, 2.5)
    assert morphology_features(round_)[0, _ELLIPTICITY_5PX] < 0.01
    assert morphology_features(elongated)[0, _ELLIPTICITY_5PX] > 0.3
    # Symmetric about the candidate pixel: no asymmetry, wherever among the
    # four central pixels a dihedral transform has put it.
    for centre in ((SIZE // 2, SIZE // 2), (SIZE // 2 - 1, SIZE // 2)):
        assert morphology_features(_source(1.5, 1.5, centre=centre))[0, _ASYMMETRY] < 1e-4
    lopsided = _source(1.5, 1.5) + 0.5 * _source(1.0, 1.0, centre=(SIZE // 2, SIZE // 2 + 3))
    assert morphology_features(lopsided)[0, _ASYMMETRY] > 0.1


def test_fused_network_adds_the_branch_logits():
    model = build_model("resnet18", stem="nopool", morphology=True).eval()
    assert isinstance(model, MorphologyFusion)
    x = _source(1.5, 2.0, n=3, noise=0.2)
    with torch.no_grad():
        expected = model.network(x) + model.morphology(morphology_features(x))
        torch.testing.assert_close(model(x), expected)
        # The inference engine folds batch norm through torch.fx: the branch traces.
        from torch.fx.experimental.optimization import fuse

        torch.testing.assert_close(fuse(model)(x), expected, atol=1e-4, rtol=1e-4)


def test_fused_weights_round_trip_between_plain_and_fused(tmp_path):
    torch.manual_seed(0)
    plain = build_model("resnet18", stem="nopool")
    path = tmp_path / "plain.pth"
    torch.save(plain.state_dict(), path)
    fused = build_model("resnet18", stem="nopool", weights=path, morphology=True)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fused.network.state_dict()[key], value)
    # A fused state dict starts a fused network (branch included) or a plain one.
    with torch.no_grad():
        fused.morphology[1].weight.add_(1.0)
    fused_path = tmp_path / "fused.pth"
    torch.save(fused.state_dict(), fused_path)
    again = build_model("resnet18", stem="nopool", weights=fused_path, morphology=True)
    torch.testing.assert_close(again.morphology[1].weight, fused.morphology[1].weight)
    back = build_model("resnet18", stem="nopool", weights=fused_path)
    torch.testing.assert_close(back.fc.weight, plain.fc.weight)


def _tiny_set(n=24):
    rng = np.random.default_rng(1)
    labels = np.resize(np.array([1, 2, 3, 4]), n)
    shapes = {1: (1.5, 1.5), 2: (1.0, 2.5), 3: (3.0, 3.0), 4: (0.8, 0.8)}
    cutouts = np.concatenate(
        [20 * _source(*shapes[c], noise=1.0, seed=int(rng.integers(1000))).numpy() for c in labels]
    )
    galaxy = np.where(np.arange(n) < 16, "A", "B")
    return TrainingSet(cutouts, labels, galaxy=galaxy, bands=BANDS)


def test_training_with_the_branch_records_and_reloads_it(tmp_path):
    ts = _tiny_set()
    clf = train_classifier(
        ts,
        arch="resnet18",
        weights=None,
        epochs=1,
        batch_size=8,
        morphology=True,
        progress_bar=False,
        device="cpu",
    )
    assert clf.card.model_options["morphology"] is True
    assert clf.card.training["options"]["morphology"] is True
    assert isinstance(clf.models[0], MorphologyFusion)
    clf.save(tmp_path / "m.pt")
    loaded = ClusterClassifier.load(tmp_path / "m.pt", device="cpu")
    assert isinstance(loaded.models[0], MorphologyFusion)
    np.testing.assert_allclose(
        loaded.predict_proba(ts.cutouts), clf.predict_proba(ts.cutouts), atol=1e-5
    )


def test_branch_trains_with_the_head_when_the_backbone_is_frozen():
    ts = _tiny_set()
    torch.manual_seed(0)
    start = build_model("resnet18", stem="nopool", morphology=True).state_dict()
    clf = train_classifier(
        ts,
        arch="resnet18",
        weights=None,
        epochs=1,
        batch_size=8,
        morphology=True,
        freeze_backbone_epochs=1,
        progress_bar=False,
        device="cpu",
        seed=0,
    )
    trained = clf.models[0].state_dict()
    assert not torch.equal(trained["morphology.1.weight"], start["morphology.1.weight"])
    assert torch.equal(
        trained["network.layer2.0.conv1.weight"], start["network.layer2.0.conv1.weight"]
    )


def test_morphology_option_errors_and_cli(tmp_path, capsys):
    from photutils_clusterclf.cli import EXIT_BAD_INPUT

    with pytest.raises(ValueError, match="morphology=True needs a torchvision architecture"):
        TrainingOptions(arch="small_cnn", morphology=True)
    assert TrainingOptions(arch="resnet18", morphology=True).morphology is True
    # The flag reaches TrainingOptions, which refuses it before any data is read.
    argv = ["train", "--galaxy", f"{tmp_path / 'cat.fits'}={tmp_path}", "--label-column", "class"]
    argv += ["--out", tmp_path / "m.pt", "--arch", "small_cnn", "--morphology"]
    status, _, err = run_cli(argv, capsys)
    assert status == EXIT_BAD_INPUT
    assert "morphology=True needs a torchvision architecture" in err
