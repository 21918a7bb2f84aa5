import time

import pytest
import torch
import torchvision

from photutils_clusterclf.models import (
    ARCHITECTURES,
    MIN_INPUT_SIZE,
    build_model,
    check_input_size,
    imagenet_weights_file,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    # Never touch the network, and never the user's real torch cache.
    monkeypatch.setenv("CLUSTERCLF_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _write_imagenet_file(arch, seed=0):
    """Cache a torchvision-shaped ImageNet state dict (3-channel stem, 1000 classes)."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    path = imagenet_weights_file(arch)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def test_architectures_listed():
    assert {"resnet18", "vgg19_bn", "resnet34", "vgg11_bn", "small_cnn"} <= set(ARCHITECTURES)


@pytest.mark.parametrize(
    "arch, n_bands",
    [("resnet18", 5), ("resnet34", 1), ("small_cnn", 1), ("small_cnn", 5)],
)
def test_build_random_forward(arch, n_bands):
    model = build_model(arch, n_bands=n_bands, n_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, n_bands, MIN_INPUT_SIZE[arch], MIN_INPUT_SIZE[arch]))
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()


def test_small_cnn_is_small_and_size_agnostic():
    model = build_model("small_cnn").eval()
    assert sum(p.numel() for p in model.parameters()) < 100_000
    with torch.no_grad():
        for size in (8, 32, 57):
            assert model(torch.randn(1, 5, size, size)).shape == (1, 4)


def test_vgg11_small_input():
    model = build_model("vgg11_bn", n_bands=5, n_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 5, 32, 32)).shape == (1, 4)
    assert model.features[0].in_channels == 5


def test_imagenet_weights_file(tmp_path):
    path = imagenet_weights_file("resnet18")
    assert path == tmp_path / "torch_home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_weights_file("vgg19_bn").name.startswith("vgg19_bn-")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        imagenet_weights_file("small_cnn")


def test_imagenet_missing_file_error_is_fast_and_helpful():
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        build_model("resnet18", weights="imagenet")
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "\n" not in msg
    assert str(imagenet_weights_file("resnet18")) in msg
    assert "resnet18-f37072fd.pth" in msg and "weights=None" in msg and "CLUSTERCLF_OFFLINE" in msg


def _check_adapted(model, state, stem, head, n_bands):
    adapted = model.state_dict()
    expected = (
        state[stem + ".weight"].mean(dim=1, keepdim=True).repeat(1, n_bands, 1, 1) * 3 / n_bands
    )
    torch.testing.assert_close(adapted[stem + ".weight"], expected)
    # a flat multi-band image gets the response a flat RGB image had
    torch.testing.assert_close(
        adapted[stem + ".weight"].sum(dim=1), state[stem + ".weight"].sum(dim=1)
    )
    for key, value in state.items():
        if key.startswith(head + ".") or key == stem + ".weight":
            continue
        assert torch.equal(adapted[key], value), key
    assert adapted[head + ".weight"].shape[0] == 4


def test_imagenet_resnet18_adaptation():
    state = _write_imagenet_file("resnet18")
    model = build_model("resnet18", n_bands=5, n_classes=4, weights="imagenet")
    _check_adapted(model, state, "conv1", "fc", 5)
    assert model.fc.out_features == 4


@pytest.mark.slow
def test_imagenet_vgg19_bn_adaptation():
    state = _write_imagenet_file("vgg19_bn")
    model = build_model("vgg19_bn", n_bands=4, n_classes=4, weights="imagenet").eval()
    _check_adapted(model, state, "features.0", "classifier.6", 4)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 32, 32)).shape == (1, 4)


def test_local_path_imagenet_and_adapted(tmp_path):
    torch.manual_seed(3)
    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "my_imagenet.pth"
    torch.save(imagenet, path)
    model = build_model("resnet18", n_bands=3, n_classes=4, weights=path)
    _check_adapted(model, imagenet, "conv1", "fc", 3)

    # an already adapted state dict loads exactly, head included
    torch.manual_seed(4)
    ours = build_model("resnet18", n_bands=5, n_classes=4).state_dict()
    torch.save(ours, tmp_path / "ours.pth")
    loaded = build_model("resnet18", n_bands=5, n_classes=4, weights=str(tmp_path / "ours.pth"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in ours.items())


def test_local_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("resnet18", weights=tmp_path / "nope.pth")
    torch.save(build_model("small_cnn", n_bands=5).state_dict(), tmp_path / "small.pth")
    with pytest.raises(ValueError, match="expected 2 and 4"):
        build_model("small_cnn", n_bands=2, weights=tmp_path / "small.pth")
    with pytest.raises(ValueError, match="do not fit resnet18"):
        build_model("resnet18", weights=tmp_path / "small.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read weights file"):
        build_model("small_cnn", weights=tmp_path / "junk.pth")
    torch.save({"format": "x", "card": {}}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        build_model("small_cnn", weights=tmp_path / "ckpt.pt")


def test_build_model_argument_errors():
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'.*accepted: resnet18"):
        build_model("resnet50")
    with pytest.raises(ValueError, match="n_bands"):
        build_model("small_cnn", n_bands=0)
    with pytest.raises(TypeError, match="weights must be"):
        build_model("small_cnn", weights=3)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_model("small_cnn", weights="imagenet")


def test_check_input_size():
    check_input_size("vgg19_bn", 32)
    with pytest.raises(ValueError, match="at least 32 px"):
        check_input_size("vgg19_bn", 16)
    check_input_size("small_cnn", 16)


@pytest.mark.parametrize(
    "conf_offline, env, expected",
    [(True, None, True), (False, "1", True), (False, "0", False), (False, None, False)],
)
def test_offline_mode_from_astropy_config_or_environment(monkeypatch, conf_offline, env, expected):
    from photutils_clusterclf import conf, models

    if env is None:
        monkeypatch.delenv("CLUSTERCLF_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("CLUSTERCLF_OFFLINE", env)
    probed = []
    monkeypatch.setattr(models, "_reachable", lambda url: probed.append(url) or False)
    with conf.set_temp("offline", conf_offline), pytest.raises(FileNotFoundError) as info:
        build_model("resnet18", weights="imagenet")
    # Offline: no network probe at all; online: the probe runs (and fails here).
    assert (probed == []) == expected
    assert ("(offline: " in str(info.value)) == expected
    assert ("is unreachable)" in str(info.value)) != expected
