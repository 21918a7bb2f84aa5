"""Tests of the small-input training recipe: stems, heads, colour-keeping
normalisation, schedules, label smoothing, old checkpoints, classical features."""

import dataclasses

import numpy as np
import pytest
import torch
import torchvision
from helpers import BANDS

from photutils_clusterclf.checkpoint import ModelCard, save_checkpoint
from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.features import candidate_features, feature_names
from photutils_clusterclf.models import (
    RECOMMENDED_VARIANTS,
    build_model,
    imagenet_weights_file,
)
from photutils_clusterclf.preprocessing import Normalization
from photutils_clusterclf.training import TrainingSet, train_classifier


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("CLUSTERCLF_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _first_block_input(model, size):
    """Spatial side of the feature map entering the first residual block."""
    seen = []
    handle = model.layer1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 5, size, size))
    handle.remove()
    return seen[0][-1]


@pytest.mark.parametrize("stem, side", [("standard", 8), ("nopool", 16), ("stride1", 32)])
def test_resnet_stem_resolution(stem, side):
    model = build_model("resnet18", stem=stem)
    assert _first_block_input(model, 32) == side
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 5, 32, 32)).shape == (2, 4)


def test_vgg_compact_head_and_nopool():
    standard = build_model("vgg11_bn")
    compact = build_model("vgg11_bn", head="compact")
    n_standard = sum(p.numel() for p in standard.parameters())
    n_compact = sum(p.numel() for p in compact.parameters())
    assert n_compact < n_standard / 10  # the 4096-wide layers are gone
    nopool = build_model("vgg11_bn", stem="nopool", head="compact").eval()
    pools = [m for m in nopool.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 4
    with torch.no_grad():
        assert nopool(torch.zeros(2, 5, 32, 32)).shape == (2, 4)
    # Same parameter names and shapes as the standard features: ImageNet weights fit.
    assert {k: v.shape for k, v in nopool.features.state_dict().items()} == {
        k: v.shape for k, v in standard.features.state_dict().items()
    }


@pytest.mark.parametrize(
    "arch, stem, head", [("resnet18", "stride1", "standard"), ("vgg11_bn", "nopool", "compact")]
)
def test_imagenet_weights_load_into_variants(arch, stem, head):
    torch.manual_seed(0)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    path = imagenet_weights_file(arch)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    model = build_model(arch, n_bands=5, weights="imagenet", stem=stem, head=head)
    key = "conv1.weight" if arch.startswith("resnet") else "features.0.weight"
    expected = state[key].mean(dim=1, keepdim=True).repeat(1, 5, 1, 1) * 3 / 5
    torch.testing.assert_close(model.state_dict()[key], expected)


def test_variant_errors():
    with pytest.raises(ValueError, match="unknown stem 'tiny'; accepted: standard"):
        build_model("resnet18", stem="tiny")
    with pytest.raises(ValueError, match="unknown head"):
        build_model("resnet18", head="big")
    with pytest.raises(ValueError, match="no strided stem convolution"):
        build_model("vgg11_bn", stem="stride1")
    with pytest.raises(ValueError, match="small_cnn has no stem or head variants"):
        build_model("small_cnn", head="compact")


def _source(rng, n=4, size=17, colours=(1.0, 2.0, 4.0, 3.0, 0.5)):
    yy, xx = np.mgrid[:size, :size] - size // 2
    blob = np.exp(-(xx**2 + yy**2) / 3.0)
    amp = 50 * np.asarray(colours)[None, :, None, None]
    noise = rng.normal(0, 1, (n, len(colours), size, size))
    return (amp * blob + noise + 3.0).astype(np.float32)


def test_shared_normalization_keeps_colours():
    rng = np.random.default_rng(0)
    data = _source(rng)
    shared, per_band = Normalization("asinh_shared"), Normalization("asinh")
    # A common rescale of all bands cancels (plus any per-band offset: background).
    offsets = np.array([1.0, -2.0, 0.0, 5.0, 3.0], dtype=np.float32)[None, :, None, None]
    np.testing.assert_allclose(shared(7.0 * data + offsets), shared(data), atol=1e-4)
    # Rescaling one band changes that band's input (a colour change) ...
    redder = data.copy()
    redder[:, 4] *= 4.0
    assert np.abs(shared(redder)[:, 4] - shared(data)[:, 4]).max() > 0.3
    # ... which the per-band normalisation divides away.
    np.testing.assert_allclose(per_band(redder), per_band(data), atol=1e-4)
    # Brighter bands give larger values at the centre with one shared scale.
    centre = shared(data)[:, :, 8, 8].mean(axis=0)
    assert list(np.argsort(centre)) == [4, 0, 1, 3, 2]


def test_shared_normalization_needs_bands_and_round_trips():
    norm = Normalization("asinh_shared", {"softening": 2.0})
    assert Normalization.from_dict(norm.to_dict()) == norm
    assert norm != Normalization("asinh", {"softening": 2.0})
    with pytest.raises(ValueError, match=r"at least 3 dimensions \(\.\.\., B, S, S\)"):
        norm(np.zeros((8, 8), dtype=np.float32))


def _tiny_set(n=32, size=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.resize(np.array([1, 2, 3, 4]), n)
    yy, xx = np.mgrid[:size, :size] - size // 2
    widths = {1: 1.0, 2: 2.5, 3: 4.0, 4: 0.7}
    cutouts = np.stack(
        [
            30
            * np.exp(-(xx**2 + yy**2) / (2 * widths[c] ** 2))[None]
            * rng.uniform(0.5, 1.5, (5, 1, 1))
            + rng.normal(0, 1, (5, size, size))
            for c in labels
        ]
    ).astype(np.float32)
    galaxy = np.where(np.arange(n) < 24, "A", "B")
    return TrainingSet(cutouts, labels, galaxy=galaxy, bands=BANDS)


FAST = {
    "arch": "small_cnn",
    "weights": None,
    "epochs": 3,
    "batch_size": 8,
    "progress_bar": False,
    "device": "cpu",
}


def test_recipe_options_recorded_and_applied(tmp_path):
    ts = _tiny_set()
    clf = train_classifier(
        ts, normalization="asinh_shared", schedule="cosine", label_smoothing=0.1, lr=2e-3, **FAST
    )
    assert clf.card.normalization["name"] == "asinh_shared"
    assert clf.card.model_options == {"stem": "standard", "head": "standard"}
    options = clf.card.training["options"]
    assert options["schedule"] == "cosine" and options["label_smoothing"] == 0.1
    # Warm-up over the first epoch, then cosine decay: the lr rises then falls.
    lrs = [r["lr"] for r in clf.card.training["members"][0]["log"]]
    assert lrs[0] < 2e-3 and lrs[1] == pytest.approx(2e-3) and lrs[2] < lrs[1]
    clf.save(tmp_path / "m.pt")
    loaded = ClusterClassifier.load(tmp_path / "m.pt", device="cpu")
    assert loaded.normalization == Normalization("asinh_shared")
    np.testing.assert_allclose(
        loaded.predict_proba(ts.cutouts), clf.predict_proba(ts.cutouts), atol=1e-6
    )


def test_auto_variant_follows_the_architecture():
    ts = _tiny_set(n=16, size=32)
    clf = train_classifier(
        ts, arch="resnet18", weights=None, epochs=1, batch_size=8, progress_bar=False, device="cpu"
    )
    assert clf.card.model_options == RECOMMENDED_VARIANTS["resnet18"]
    assert clf.card.training["options"]["stem"] == RECOMMENDED_VARIANTS["resnet18"]["stem"]
    expected = (
        32
        if RECOMMENDED_VARIANTS["resnet18"]["stem"] == "stride1"
        else (16 if RECOMMENDED_VARIANTS["resnet18"]["stem"] == "nopool" else 8)
    )
    assert _first_block_input(clf.models[0], 32) == expected


def test_label_smoothing_changes_training():
    ts = _tiny_set()
    a = train_classifier(ts, label_smoothing=0.0, schedule="plateau", **FAST)
    b = train_classifier(ts, label_smoothing=0.3, schedule="plateau", **FAST)
    loss_a = a.card.training["members"][0]["log"][0]["train_loss"]
    loss_b = b.card.training["members"][0]["log"][0]["train_loss"]
    assert loss_a != loss_b


def test_recipe_option_errors():
    ts = _tiny_set()
    with pytest.raises(ValueError, match="schedule='onecycle' is not one of"):
        train_classifier(ts, schedule="onecycle", **FAST)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        train_classifier(ts, label_smoothing=1.0, **FAST)
    with pytest.raises(ValueError, match="unknown normalization 'zscale'"):
        train_classifier(ts, normalization="zscale", **FAST)
    with pytest.raises(ValueError, match="small_cnn has no stem or head variants"):
        train_classifier(ts, stem="nopool", **FAST)


def test_checkpoint_without_model_options_loads_with_old_normalization(tmp_path):
    """A checkpoint written before stems and shared normalisation still loads as it was."""
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    card = ModelCard(
        arch="resnet18",
        bands=BANDS,
        cutout_size=32,
        input_size=32,
        normalization=Normalization("asinh").to_dict(),
    )
    payload = card.to_dict()
    del payload["model_options"]  # the layout of older files
    path = tmp_path / "old.pt"
    save_checkpoint(path, ModelCard.from_dict(payload), [model.state_dict()])
    loaded = ClusterClassifier.load(path, device="cpu")
    assert loaded.normalization == Normalization("asinh")
    assert _first_block_input(loaded.models[0], 32) == 8  # the standard stem
    x = torch.randn(3, 5, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.models[0](x), model(x))


def test_from_model_records_the_variant(tmp_path):
    torch.manual_seed(1)
    model = build_model("resnet18", stem="stride1").eval()
    clf = ClusterClassifier.from_model(
        model,
        arch="resnet18",
        bands=BANDS,
        cutout_size=32,
        model_options={"stem": "stride1"},
        device="cpu",
    )
    clf.save(tmp_path / "m.pt")
    loaded = ClusterClassifier.load(tmp_path / "m.pt", device="cpu")
    assert _first_block_input(loaded.models[0], 32) == 32
    x = np.random.default_rng(0).normal(size=(2, 5, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x), atol=1e-6)


def test_candidate_features_on_tiny_cutouts():
    size = 15
    yy, xx = np.mgrid[:size, :size] - size // 2
    rng = np.random.default_rng(1)
    compact = np.exp(-(xx**2 + yy**2) / (2 * 0.8**2))
    extended = np.exp(-(xx**2 + yy**2 / 0.25) / (2 * 2.5**2))  # elongated along x
    pair = np.exp(-((xx - 3) ** 2 + yy**2) / 2) + np.exp(-((xx + 3) ** 2 + yy**2) / 2)
    red = np.array([0.2, 0.3, 0.6, 1.0, 2.0])[:, None, None]
    blue = red[::-1]
    stamps = np.stack([100 * compact * red, 100 * extended * blue, 100 * pair * red])
    stamps = stamps + rng.normal(0, 0.3, stamps.shape) + 2.0
    stamps[0, 1, :2, :] = np.nan  # missing data counts as background
    features, names = candidate_features(stamps, bands=BANDS)
    assert names == feature_names(BANDS) and features.shape == (3, len(names))
    assert np.isfinite(features).all()
    col = {n: features[:, i] for i, n in enumerate(names)}
    assert col["ci_F555W"][0] < col["ci_F555W"][1]  # the compact source is more concentrated
    assert col["ellipticity"][1] > 0.3 > col["ellipticity"][0]
    assert list(col["n_peaks"]) == [1, 1, 2]
    # Colour F555W - F814W: red sources have the redder (larger) colour.
    assert col["colour_F555W-F814W"][0] > col["colour_F555W-F814W"][1]
    np.testing.assert_allclose(
        features[:, [names.index(f"fraction_{b}") for b in BANDS]].sum(axis=1), 1.0
    )
    # Features do not depend on the flux units.
    scaled, _ = candidate_features(10.0 * stamps, bands=BANDS)
    np.testing.assert_allclose(scaled, features, rtol=1e-6, atol=1e-9)


def test_candidate_features_errors():
    with pytest.raises(ValueError, match="at least 11 px"):
        candidate_features(np.zeros((1, 5, 9, 9)), bands=BANDS)
    with pytest.raises(ValueError, match="2 band names given for cutouts with 5 bands"):
        candidate_features(np.zeros((1, 5, 15, 15)), bands=BANDS[:2])
    with pytest.raises(ValueError, match="reference_band 'F999W'"):
        candidate_features(np.zeros((1, 5, 15, 15)), bands=BANDS, reference_band="F999W")


def test_cli_train_help_lists_the_variants_and_normalizations(capsys):
    # The CLI writes the names out (their lists live in modules that import
    # torch, which building the parser must not): they must stay in step.
    from photutils_clusterclf.cli import main
    from photutils_clusterclf.models import HEADS, STEMS
    from photutils_clusterclf.preprocessing import NORMALIZATIONS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(("auto",) + STEMS) + "}" in out
    assert "{" + ",".join(("auto",) + HEADS) + "}" in out
    listed = out.split("--normalization {")[1].split("}")[0].split(",")
    assert set(listed) == set(NORMALIZATIONS)


def test_auto_learning_rate_follows_the_architecture(capsys, monkeypatch):
    from photutils_clusterclf.cli import main
    from photutils_clusterclf.training.options import DEFAULT_LR, RECOMMENDED_LR, TrainingOptions

    vgg = TrainingOptions(arch="vgg19_bn")
    assert vgg.learning_rate() == RECOMMENDED_LR["vgg19_bn"] != DEFAULT_LR
    assert vgg.to_dict()["lr"] == RECOMMENDED_LR["vgg19_bn"]
    assert TrainingOptions(arch="resnet18").learning_rate() == DEFAULT_LR
    assert TrainingOptions(arch="vgg19_bn", lr=5e-4).learning_rate() == 5e-4  # a number is kept
    # Replacing the architecture of default options (what train_classifier's
    # keywords do) follows the new architecture: "auto" is resolved late.
    assert (
        dataclasses.replace(TrainingOptions(), arch="vgg19_bn").learning_rate()
        == (RECOMMENDED_LR["vgg19_bn"])
    )
    for bad in ("fast", 0, -1e-3, True):
        with pytest.raises(ValueError, match="lr must be a positive number or 'auto'"):
            TrainingOptions(lr=bad)
    # The card records the number "auto" chose for the architecture given as
    # a keyword, and the optimiser used it.
    monkeypatch.setitem(RECOMMENDED_LR, "small_cnn", 4e-4)
    clf = train_classifier(_tiny_set(), schedule="plateau", **FAST)
    assert clf.card.training["options"]["lr"] == 4e-4
    assert clf.card.training["members"][0]["log"][0]["lr"] == 4e-4
    monkeypatch.delitem(RECOMMENDED_LR, "small_cnn")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--lr LR peak learning rate (default auto: 0.0003 for vgg19_bn, 0.001 otherwise)" in out
