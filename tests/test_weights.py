"""Named pretrained weights: registry, cache lookup, SHA-256 check, fine-tuning sources."""

import dataclasses

import numpy as np
import pytest
import torch
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf import ClusterClassifier, build_model
from photutils_clusterclf.cli import main
from photutils_clusterclf.fileio import sha256_file
from photutils_clusterclf.training import TrainingSet, resolve_weights, train_classifier
from photutils_clusterclf.training.options import PRETRAINED_BACKBONE_LR_FACTOR
from photutils_clusterclf.models import imagenet_weights_file, import_state_dict
from photutils_clusterclf.weights import (
    WEIGHTS,
    WeightsEntry,
    find_weights_file,
    install_weights,
    load_weights,
    register_weights,
    weights_dirs,
)

from helpers import BANDS, write_weights_file


def _state_equal(model, state):
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_registry_entries_and_the_command_that_makes_them():
    entry = WEIGHTS["sim-resnet18"]
    assert (entry.arch, entry.bands, entry.cutout_size) == ("resnet18", BANDS, 32)
    assert entry.command.startswith("clusterclf pretrain --name sim-resnet18 --arch resnet18")
    with pytest.raises(KeyError, match="no pretrained weights named 'sim-x'.*sim-resnet18"):
        load_weights("sim-x")
    with pytest.raises(ValueError, match="lower-case"):
        WeightsEntry(
            name="Sim", arch="small_cnn", bands=BANDS, cutout_size=32, input_size=32, description=""
        )
    with pytest.raises(ValueError, match="already registered"):
        register_weights(entry)


def test_missing_file_is_one_line_naming_file_place_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build_model("small_cnn", weights="sim-small_cnn")
    msg = str(info.value)
    assert "\n" not in msg
    assert "sim-small_cnn-<sha256[:8]>.pt" in msg
    assert str(weights_dirs()[0]) in msg and str(weights_dirs()[1]) in msg
    assert "clusterclf pretrain --name sim-small_cnn" in msg
    # train_classifier fails before any work; so does the command line.
    ts = TrainingSet(np.ones((8, 5, 32, 32)), [1, 2, 3, 4] * 2, bands=BANDS)
    with pytest.raises(FileNotFoundError, match="clusterclf pretrain --name sim-small_cnn"):
        train_classifier(ts, arch="small_cnn", weights="sim-small_cnn", progress_bar=False)


def test_install_load_and_a_modified_file_is_caught(tmp_path):
    state = write_weights_file(tmp_path / "made.pt")
    installed = install_weights(tmp_path / "made.pt", "sim-small_cnn")
    digest = sha256_file(installed)
    assert installed == weights_dirs()[0] / f"sim-small_cnn-{digest[:8]}.pt"
    assert find_weights_file("sim-small_cnn") == installed
    assert _state_equal(build_model("small_cnn", weights="sim-small_cnn"), state)
    # A second, different file for the same name is refused without overwrite.
    write_weights_file(tmp_path / "other.pt", seed=1)
    with pytest.raises(FileExistsError, match="already installed"):
        install_weights(tmp_path / "other.pt", "sim-small_cnn")
    # Change one byte inside the file: the name's hash prefix no longer matches.
    data = bytearray(installed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    installed.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified or damaged.*clusterclf pretrain"):
        build_model("small_cnn", weights="sim-small_cnn")


def test_found_in_astropy_cache_and_pinned_sha256(tmp_path, monkeypatch):
    write_weights_file(tmp_path / "made.pt")
    digest = sha256_file(tmp_path / "made.pt")
    entry = WeightsEntry(
        name="test-pinned",
        arch="small_cnn",
        bands=BANDS,
        cutout_size=32,
        input_size=32,
        description="test",
        sha256=digest,
        url="https://example.org/test-pinned.pt",
    )
    monkeypatch.setitem(WEIGHTS, entry.name, entry)
    with pytest.raises(
        FileNotFoundError, match=f"no test-pinned-{digest[:8]}.pt.*download https://example.org"
    ):
        load_weights("test-pinned")
    target = weights_dirs()[1] / entry.file_name(digest)
    target.write_bytes((tmp_path / "made.pt").read_bytes())
    assert load_weights("test-pinned").sha256 == digest
    # A pinned entry refuses any other file, even one whose name carries its hash.
    write_weights_file(tmp_path / "other.pt", seed=1)
    with pytest.raises(ValueError, match="pinned"):
        install_weights(tmp_path / "other.pt", "test-pinned")
    monkeypatch.setitem(WEIGHTS, entry.name, dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(ValueError, match="expected 0000.*modified"):
        load_weights("test-pinned")  # a file that is not the pinned one


def test_card_must_match_the_entry(tmp_path):
    write_weights_file(tmp_path / "four.pt", bands=BANDS[:4])
    with pytest.raises(ValueError, match="entry 'sim-small_cnn' is"):
        install_weights(tmp_path / "four.pt", "sim-small_cnn")
    write_weights_file(tmp_path / "made.pt")
    install_weights(tmp_path / "made.pt", "sim-small_cnn")
    with pytest.raises(ValueError, match="are a small_cnn for 5 bands.*asked for resnet18"):
        build_model("resnet18", weights="sim-small_cnn")


def test_continue_from_a_clusterclf_checkpoint(tmp_path):
    state = write_weights_file(tmp_path / "galaxy1.pt")
    assert _state_equal(build_model("small_cnn", weights=tmp_path / "galaxy1.pt"), state)
    with pytest.raises(ValueError, match="asked for small_cnn with 4 bands"):
        build_model("small_cnn", n_bands=4, weights=tmp_path / "galaxy1.pt")


def test_import_plain_state_dict_with_a_model_card(tmp_path):
    torch.manual_seed(3)
    theirs = build_model("small_cnn", n_bands=5).state_dict()
    torch.save(theirs, tmp_path / "theirs.pth")
    sha = import_state_dict(
        tmp_path / "theirs.pth",
        tmp_path / "imported.pt",
        arch="small_cnn",
        bands=BANDS,
        cutout_size=32,
        input_size=32,
        description="a published model",
        source="doi:10/xyz",
    )
    clf = ClusterClassifier.load(tmp_path / "imported.pt", device="cpu", sha256=sha)
    assert clf.card.training["imported"]["source"] == "doi:10/xyz"
    assert _state_equal(clf.models[0], theirs)
    assert _state_equal(build_model("small_cnn", weights=tmp_path / "imported.pt"), theirs)
    with pytest.raises(ValueError, match="does not fit resnet18"):
        import_state_dict(
            theirs,
            tmp_path / "bad.pt",
            arch="resnet18",
            bands=BANDS,
            cutout_size=32,
            input_size=32,
            description="",
            source="",
        )


def _tiny_set():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 3, 4], 8)
    cutouts = rng.normal(size=(32, 5, 16, 16)) + labels[:, None, None, None]
    return TrainingSet(cutouts, labels, bands=BANDS)


def _stem_head_ids(model):
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return {
        name
        for name, p in model.named_parameters()
        if any(p is q for m in convs[:1] + linears[-1:] for q in m.parameters())
    }


def test_fine_tune_from_named_weights_with_a_frozen_backbone(tmp_path):
    state = write_weights_file(tmp_path / "made.pt")
    install_weights(tmp_path / "made.pt", "sim-small_cnn")
    clf = train_classifier(
        _tiny_set(),
        arch="small_cnn",
        weights="sim-small_cnn",
        epochs=2,
        batch_size=8,
        backbone_lr_factor=0.0,
        progress_bar=False,
        val_fraction=0,
    )
    assert clf.card.training["options"]["weights"] == "sim-small_cnn"
    assert clf.card.training["options"]["backbone_lr_factor"] == 0.0
    trained = dict(clf.models[0].named_parameters())
    free = _stem_head_ids(clf.models[0])
    assert free and all(not torch.equal(trained[k], state[k]) for k in free)
    assert all(torch.equal(trained[k].cpu(), state[k]) for k in trained if k not in free)
    with pytest.raises(ValueError, match="backbone_lr_factor"):
        train_classifier(_tiny_set(), arch="small_cnn", weights=None, backbone_lr_factor=2)


def test_discriminative_lr_changes_the_backbone_less(tmp_path):
    state = write_weights_file(tmp_path / "made.pt")
    moved = {}
    for factor in (1.0, 0.1):
        clf = train_classifier(
            _tiny_set(),
            arch="small_cnn",
            weights=tmp_path / "made.pt",
            epochs=1,
            batch_size=8,
            backbone_lr_factor=factor,
            augment=False,
            progress_bar=False,
            val_fraction=0,
        )
        params = dict(clf.models[0].named_parameters())
        free = _stem_head_ids(clf.models[0])
        moved[factor] = sum(
            float((params[k].detach().cpu() - state[k]).abs().sum())
            for k in params
            if k not in free
        )
    assert 0 < moved[0.1] < 0.5 * moved[1.0]


def test_auto_backbone_lr_factor_is_small_only_from_pretrained_weights(tmp_path):
    from photutils_clusterclf.training import TrainingOptions

    options = TrainingOptions()
    assert options.backbone_lr_factor == "auto"
    assert options.backbone_lr_ratio(None) == 1.0
    assert options.backbone_lr_ratio("sim-resnet18") == PRETRAINED_BACKBONE_LR_FACTOR < 1
    assert TrainingOptions(backbone_lr_factor=0.5).backbone_lr_ratio("imagenet") == 0.5
    with pytest.raises(ValueError, match="number in \\[0, 1\\] or 'auto', got 'fast'"):
        TrainingOptions(backbone_lr_factor="fast")

    write_weights_file(tmp_path / "made.pt")

    def fine_tune(weights, **factor):
        return train_classifier(
            _tiny_set(),
            arch="small_cnn",
            weights=weights,
            epochs=1,
            batch_size=8,
            progress_bar=False,
            val_fraction=0,
            **factor,
        )

    auto = fine_tune(tmp_path / "made.pt")
    explicit = fine_tune(tmp_path / "made.pt", backbone_lr_factor=PRETRAINED_BACKBONE_LR_FACTOR)
    assert auto.card.training["options"]["backbone_lr_factor"] == PRETRAINED_BACKBONE_LR_FACTOR
    for a, b in zip(auto.models[0].parameters(), explicit.models[0].parameters(), strict=True):
        assert torch.equal(a, b)
    assert fine_tune(None).card.training["options"]["backbone_lr_factor"] == 1.0


def test_cli_backbone_lr_factor_accepts_auto_or_a_number(capsys):
    from photutils_clusterclf.cli import _number_or_auto

    assert _number_or_auto("auto") == "auto"
    assert _number_or_auto("0.25") == 0.25
    with pytest.raises(SystemExit) as exc:
        main(["train", "--backbone-lr-factor", "fast"])
    assert exc.value.code == 2
    assert (
        "--backbone-lr-factor: expected a number or 'auto', got 'fast'" in capsys.readouterr().err
    )


def test_cli_train_from_named_weights(tmp_path, capsys):
    from photutils_clusterclf.checkpoint import load_checkpoint
    from photutils_clusterclf.datasets import simulate_field

    field = simulate_field(shape=(256, 256), n_candidates=40, seed=5, target="g1")
    paths = field.write(tmp_path)
    args = [
        "train",
        "--galaxy",
        f"{paths['catalog']}={tmp_path}",
        "--label-column",
        "CLASS_TRUE",
        "--arch",
        "small_cnn",
        "--epochs",
        "1",
        "--weights",
        "sim-small_cnn",
        "--freeze-backbone-epochs",
        "1",
        "--quiet",
    ]
    assert main(args + ["--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "clusterclf pretrain --name sim-small_cnn" in err
    write_weights_file(tmp_path / "made.pt")
    install_weights(tmp_path / "made.pt", "sim-small_cnn")
    assert main(args + ["--out", str(tmp_path / "m.pt")]) == 0
    options = load_checkpoint(tmp_path / "m.pt").card.training["options"]
    assert options["weights"] == "sim-small_cnn"
    assert options["freeze_backbone_epochs"] == 1
    # Without --weights ("auto") the installed simulated-field weights are the start.
    capsys.readouterr()
    auto = [a for a in args if a not in ("--weights", "sim-small_cnn")]
    assert main(auto + ["--out", str(tmp_path / "auto.pt")]) == 0
    assert "started from sim-small_cnn" in capsys.readouterr().out
    options = load_checkpoint(tmp_path / "auto.pt").card.training["options"]
    assert options["weights"] == "sim-small_cnn"
    assert options["backbone_lr_factor"] == PRETRAINED_BACKBONE_LR_FACTOR < 1


def test_auto_weights_prefer_simulated_fields_then_imagenet_then_random(tmp_path):
    with pytest.warns(
        AstropyUserWarning,
        match="no sim-resnet18 weights .*clusterclf pretrain "
        "--name sim-resnet18.* and no ImageNet weights at .*random initialisation",
    ):
        assert resolve_weights("resnet18") is None
    with pytest.raises(FileNotFoundError, match="no pretrained weights for small_cnn"):
        resolve_weights("small_cnn", require_pretrained=True)
    imagenet = imagenet_weights_file("resnet18")
    imagenet.parent.mkdir(parents=True)
    imagenet.write_bytes(b"only its presence is looked at here")
    assert resolve_weights("resnet18") == "imagenet"
    write_weights_file(tmp_path / "sim.pt", arch="resnet18")
    install_weights(tmp_path / "sim.pt", "sim-resnet18")
    assert resolve_weights("resnet18") == "sim-resnet18"
    # Explicit choices are kept.
    assert resolve_weights("resnet18", "imagenet") == "imagenet"
    assert resolve_weights("resnet18", None) is None
