import dataclasses
import os

import numpy as np
import pytest
import torch

import photutils_clusterclf
from photutils_clusterclf.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    ModelCard,
    check_bands,
    load_checkpoint,
    save_checkpoint,
)
from photutils_clusterclf.fileio import sha256_file
from photutils_clusterclf.models import build_model
from photutils_clusterclf.preprocessing import Normalization

from helpers import BANDS


def _card(**kw):
    args = dict(
        arch="small_cnn",
        bands=BANDS,
        cutout_size=32,
        input_size=32,
        normalization=Normalization().to_dict(),
    )
    args.update(kw)
    return ModelCard(**args)


def _members(n=2):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(build_model("small_cnn", n_bands=len(BANDS)).state_dict())
    return out


class _Payload:
    """Unpickling this runs code: writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_roundtrip_ensemble(tmp_path):
    card = _card(
        training={
            "galaxies": ["ngc628e", "ngc1433"],
            "epochs": 3,
            "log": [{"epoch": 1, "loss": np.float32(0.5)}],
            "seeds": (0, 1),
            "confusion": np.eye(4, dtype=int),
        }
    )
    members = _members(2)
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, card, members)
    assert digest == sha256_file(path)

    ckpt = load_checkpoint(path, sha256=digest.upper())
    assert isinstance(ckpt, Checkpoint) and ckpt.sha256 == digest
    assert ckpt.card.arch == "small_cnn" and ckpt.card.bands == BANDS
    assert ckpt.card.classes == (1, 2, 3, 4)
    assert Normalization.from_dict(ckpt.card.normalization) == Normalization()
    assert ckpt.card.training["log"][0]["loss"] == pytest.approx(0.5)
    assert ckpt.card.training["confusion"] == np.eye(4, dtype=int).tolist()
    assert len(ckpt.state_dicts) == 2
    for loaded, original in zip(ckpt.state_dicts, members, strict=True):
        assert loaded.keys() == original.keys()
        assert all(torch.equal(loaded[k], original[k]) for k in original)
    # the two members really differ, and load into a model
    assert not torch.equal(
        ckpt.state_dicts[0]["features.0.weight"],
        ckpt.state_dicts[1]["features.0.weight"],
    )
    build_model("small_cnn").load_state_dict(ckpt.state_dicts[1])


def test_versions_and_created_filled_at_save(tmp_path):
    card = _card()
    save_checkpoint(tmp_path / "m.pt", card, _members(1)[0])
    assert card.versions == {} and card.created == ""  # caller's card untouched
    loaded = load_checkpoint(tmp_path / "m.pt").card
    assert loaded.versions["torch"] == torch.__version__
    assert loaded.versions["photutils_clusterclf"] == photutils_clusterclf.__version__
    assert {"photutils_clusterclf", "torchvision", "astropy", "numpy"} <= set(loaded.versions)
    assert loaded.created[:2] == "20" and "T" in loaded.created

    explicit = _card(versions={"torch": "x"}, created="2020-01-01T00:00:00+00:00")
    save_checkpoint(tmp_path / "e.pt", explicit, _members(1))
    loaded = load_checkpoint(tmp_path / "e.pt").card
    assert loaded.versions == {"torch": "x"} and loaded.created.startswith("2020")


def test_card_dict_roundtrip():
    card = _card(bands=["f555w", "F814W"], training={"a": (1, 2)})
    assert card.bands == ("F555W", "F814W")
    d = card.to_dict()
    assert d["bands"] == ["F555W", "F814W"] and d["training"] == {"a": [1, 2]}
    back = ModelCard.from_dict(d)
    assert back == dataclasses.replace(card, training={"a": [1, 2]})


def test_save_refuses_overwrite_and_unstorable(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _card(), _members(1))
    with pytest.raises(FileExistsError):
        save_checkpoint(path, _card(), _members(1))
    save_checkpoint(path, _card(), _members(1), overwrite=True)
    with pytest.raises(TypeError, match=r"card\['training'\]\['obj'\] is a object"):
        save_checkpoint(tmp_path / "x.pt", _card(training={"obj": object()}), _members(1))
    with pytest.raises(TypeError, match="state dict 0"):
        save_checkpoint(tmp_path / "x.pt", _card(), [{"w": 1.0}])
    with pytest.raises(ValueError, match="at least one state dict"):
        save_checkpoint(tmp_path / "x.pt", _card(), [])
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"arch": "resnet50"}, "unknown architecture 'resnet50'"),
        ({"bands": ()}, "bands"),
        ({"cutout_size": 0}, "cutout_size"),
        ({"normalization": {"name": "zscale"}}, "accepted: asinh"),
        ({"classes": (1, 2, 3)}, r"class scheme \(1, 2, 3\)"),
    ],
)
def test_card_validation(kw, match):
    with pytest.raises(CheckpointError, match=match):
        _card(**kw)


def _save_raw(path, payload):
    torch.save(payload, path)
    return path


def _valid_payload():
    return {
        "format": "photutils-clusterclf checkpoint",
        "format_version": FORMAT_VERSION,
        "card": _card().to_dict(),
        "state_dicts": _members(1),
    }


def test_load_errors_are_one_line(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, _card(), _members(1))
    data = good.read_bytes()

    cases = {}
    cases["does not exist"] = tmp_path / "missing.pt"
    cases["is not a file"] = tmp_path
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    cases["truncated or corrupt"] = tmp_path / "trunc.pt"
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["truncated or corrupt "] = tmp_path / "empty.pt"
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint at all")
    cases["junk.pt is not a clusterclf checkpoint \\(not a file written by torch.save"] = (
        tmp_path / "junk.pt"
    )
    cases["not a photutils-clusterclf checkpoint"] = _save_raw(tmp_path / "sd.pt", _members(1)[0])
    cases["checkpoint format 2 is not supported by this version \\(reads 1\\); upgrade"] = (
        _save_raw(tmp_path / "v2.pt", {**_valid_payload(), "format_version": 2})
    )
    payload = _valid_payload()
    del payload["card"]["bands"], payload["card"]["input_size"]
    cases["lacks field\\(s\\) bands, input_size"] = _save_raw(tmp_path / "nocard.pt", payload)
    payload = _valid_payload()
    payload["card"]["classes"] = [0, 1, 2, 3, 4]
    cases["class scheme \\(0, 1, 2, 3, 4\\) is not supported"] = _save_raw(
        tmp_path / "cls.pt", payload
    )
    payload = _valid_payload()
    payload["card"]["colour"] = "red"
    cases["unknown field\\(s\\) colour"] = _save_raw(tmp_path / "extra.pt", payload)
    cases["state dict 0 must map"] = _save_raw(
        tmp_path / "sdbad.pt", {**_valid_payload(), "state_dicts": [{"w": [1]}]}
    )

    for match, path in cases.items():
        with pytest.raises(CheckpointError, match=match) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value), match
        assert isinstance(info.value, ValueError)


def test_sha256_mismatch(tmp_path):
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, _card(), _members(1))
    with pytest.raises(CheckpointError, match=f"has sha256 {digest}, expected 0+"):
        load_checkpoint(path, sha256="0" * 64)


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({**_valid_payload(), "extra": _Payload(marker)}, path)
    with pytest.raises(
        CheckpointError,
        match="refusing to load .*evil.pt: it contains Python objects "
        "other than tensors and plain containers",
    ):
        load_checkpoint(path)
    assert not marker.exists()
    # sanity check that the payload is live: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"
    os.remove(marker)


def test_check_bands():
    card = _card()
    assert check_bands(card, ["f814w", "F555W", "F438W", "F336W", "F275W", "F657N"]) == BANDS
    with pytest.raises(
        ValueError,
        match="model expects bands F275W, F336W, F438W, F555W, F814W; "
        "images have F555W, F814W \\(missing F275W, F336W, F438W\\)",
    ):
        check_bands(card, ("F555W", "F814W"))
