import numpy as np
import pytest
import torch

from photutils_clusterclf.preprocessing import (
    DIHEDRAL_TRANSFORMS,
    Normalization,
    dihedral,
    random_augment,
    resize,
)


def _cutouts(n=6, bands=5, size=21, seed=0):
    """Noisy background plus a central Gaussian source, different levels per band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size // 2
    source = np.exp(-(xx**2 + yy**2) / 4.0)
    bkg = rng.uniform(-1, 10, (n, bands, 1, 1))
    sigma = rng.uniform(0.05, 2, (n, bands, 1, 1))
    amp = rng.uniform(0, 100, (n, bands, 1, 1))
    data = bkg + amp * source + sigma * rng.standard_normal((n, bands, size, size))
    return data.astype(np.float32)


def _inverse(k):
    # A rotation inverts to the opposite one; rotation+flip is a reflection.
    return (4 - k) % 4 if k < 4 else k


# ---------------------------------------------------------------- Normalization


def test_normalization_background_and_scale():
    rng = np.random.default_rng(1)
    data = (7.0 + 0.5 * rng.standard_normal((200, 1, 32, 32))).astype(np.float32)
    out = Normalization("asinh", {"softening": 1.0})(data)
    # Pure noise: centred on 0 and, for |z| small, asinh(z) ~ z with unit sigma.
    assert abs(np.median(out)) < 0.02
    assert 0.8 < np.std(out) < 1.0  # asinh compresses the tails slightly
    assert out.dtype == np.float32


def test_normalization_scale_is_astropy_mad_std_of_the_border():
    # The fast sort-based median must give astropy's robust sigma (NaN ignored).
    from astropy.stats import mad_std

    from photutils_clusterclf.preprocessing import _border_mask

    rng = np.random.default_rng(4)
    data = (3.0 + 2.0 * rng.standard_normal((20, 2, 16, 16))).astype(np.float32)
    data[0, 0, 0, :5] = np.nan
    norm = Normalization(
        "asinh", {"softening": 1.0, "peak_fraction": 0.0, "min_scale": 1e-6, "border": 2}
    )
    out = norm(data)
    border = data[..., _border_mask(16, 16, 2)]
    bkg = np.nanmedian(border, axis=-1)
    scale = (data[..., 8, 8] - bkg) / np.sinh(out[..., 8, 8])
    np.testing.assert_allclose(scale, mad_std(border, axis=-1, ignore_nan=True), rtol=1e-3)


@pytest.mark.parametrize("values", ["normal", "ties"])
def test_median_and_mad_equal_numpy_exactly(values):
    # The one-sort median and the binary-search MAD select exactly the
    # float32 values numpy's nanmedian finds (odd/even counts, ties, NaN
    # runs, all-NaN rows), so normalised cutouts do not change by one bit.
    from photutils_clusterclf.preprocessing import _nanmedian_and_mad_last

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 48):
        data = rng.normal(3.0, 2.0, (40, 3, n))
        if values == "ties":
            data = np.round(data)
        data = data.astype(np.float32)
        data[rng.random(data.shape) < 0.3] = np.nan
        data[0] = np.nan
        med, mad = _nanmedian_and_mad_last(data)
        with pytest.warns(RuntimeWarning, match="All-NaN"):
            expected = np.nanmedian(data, axis=-1)
            expected_mad = np.nanmedian(np.abs(data - expected[..., None]), axis=-1)
        assert med.dtype == mad.dtype == np.float32
        np.testing.assert_array_equal(med, expected)
        np.testing.assert_array_equal(mad, expected_mad)


def test_normalization_invariant_to_affine_flux_changes():
    data = _cutouts()
    norm = Normalization()
    scaled = (3.0 * data + 11.0).astype(np.float32)
    np.testing.assert_allclose(norm(scaled), norm(data), atol=2e-4)


def test_normalization_batch_independent():
    data = _cutouts(n=9)
    data[2, 1, :4] = np.nan
    norm = Normalization()
    together = norm(data)
    separately = np.concatenate([norm(data[i : i + 1]) for i in range(len(data))])
    np.testing.assert_allclose(separately, together, rtol=1e-6, atol=1e-6)
    # and shuffling the batch only shuffles the output
    perm = np.random.default_rng(0).permutation(len(data))
    np.testing.assert_allclose(norm(data[perm]), together[perm], rtol=1e-6, atol=1e-6)


def test_normalization_nan_and_degenerate_inputs_are_finite():
    data = _cutouts(n=5, size=16)
    data[0] = np.nan  # no data at all
    data[1] = 0.0  # empty (zero) cutout
    data[2, :, 5:9, 5:9] = np.nan  # hole in the middle
    data[3] = 0.0
    data[3, :, 7:10, 7:10] = 1e4  # noise-free source: MAD is 0
    out = Normalization()(data)
    assert np.isfinite(out).all()
    assert np.all(out[0] == 0) and np.all(out[1] == 0)
    assert np.all(out[2, :, 5:9, 5:9] == 0)  # NaN becomes background after the stretch
    # the peak floor keeps a noise-free source bounded (asinh of ~1e3, not of 1e10)
    assert 0 < out[3, 0, 8, 8] < 10


def test_normalization_big_endian_input_and_output_dtype():
    data = _cutouts(n=2)
    out_be = Normalization()(data.astype(">f4"))
    out = Normalization()(data)
    assert out_be.dtype == np.dtype(np.float32) and out_be.dtype.isnative
    np.testing.assert_array_equal(out_be, out)
    assert out.shape == data.shape


def test_normalization_is_deterministic_and_does_not_modify_input():
    data = _cutouts()
    before = data.copy()
    a = Normalization()(data)
    b = Normalization()(data)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(data, before)


def test_normalization_softening_reduces_contrast():
    data = _cutouts()
    soft = Normalization("asinh", {"softening": 10.0})(data)
    hard = Normalization("asinh", {"softening": 1.0})(data)
    assert np.abs(soft).max() < np.abs(hard).max()


def test_normalization_dict_roundtrip():
    norm = Normalization("asinh", {"border": 2, "softening": 2.5})
    d = norm.to_dict()
    assert d == {
        "name": "asinh",
        "params": {
            "border": 2,
            "softening": 2.5,
            "min_scale": 1e-6,
            "peak_fraction": 1e-3,
        },
    }
    assert all(type(v) in (int, float) for v in d["params"].values())
    back = Normalization.from_dict(d)
    assert back == norm
    data = _cutouts()
    np.testing.assert_array_equal(back(data), norm(data))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"name": "zscale", "params": {}}, "accepted: asinh"),
        ({"name": "asinh", "params": {"gain": 1}}, "accepted: border, softening"),
        ({"name": "asinh", "params": {"softening": 0}}, "softening"),
        ({"name": "asinh", "params": {"border": 1.5}}, "border"),
        ({"name": "asinh", "params": {"peak_fraction": 1.0}}, "peak_fraction"),
        ({"params": {}}, "'name'"),
        ("asinh", "dict"),
    ],
)
def test_normalization_from_dict_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        Normalization.from_dict(bad)


# ---------------------------------------------------------------- dihedral


def test_dihedral_group():
    x = torch.arange(5 * 5, dtype=torch.float32).reshape(1, 1, 5, 5)
    images = [dihedral(x, k) for k in range(DIHEDRAL_TRANSFORMS)]
    # 8 distinct elements (the asymmetric ramp image tells them apart)
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    assert torch.equal(images[0], x)
    for k in range(DIHEDRAL_TRANSFORMS):
        assert torch.equal(dihedral(dihedral(x, k), _inverse(k)), x)
        # closure: the composition of two transforms is again one of the 8
        for j in range(DIHEDRAL_TRANSFORMS):
            assert any(torch.equal(dihedral(dihedral(x, k), j), im) for im in images)


def test_dihedral_conventions():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(dihedral(x, 1), torch.rot90(x, 1))
    assert torch.equal(dihedral(x, 4), x.flip(-1))
    assert dihedral(torch.zeros(3, 5, 7, 9), 1).shape == (3, 5, 9, 7)


@pytest.mark.parametrize("k", [-1, 8, 1.5, True])
def test_dihedral_bad_k(k):
    with pytest.raises(ValueError, match="0..7"):
        dihedral(torch.zeros(2, 2), k)


# ---------------------------------------------------------------- resize


def test_resize():
    x = torch.rand(2, 3, 16, 16)
    assert resize(x, 16) is x
    up = resize(x, 32)
    assert up.shape == (2, 3, 32, 32)
    # bilinear preserves a constant and the mean of a smooth image roughly
    const = torch.full((1, 1, 20, 20), 3.5)
    assert torch.allclose(resize(const, 7), const[..., :7, :7])
    assert torch.allclose(resize(const, 64), torch.full((1, 1, 64, 64), 3.5))


def test_resize_downsizing_is_antialiased():
    # A checkerboard averages to its mean when shrunk with antialiasing;
    # plain bilinear sampling would alias to values near 0 or 1.
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    small = resize(board.float()[None, None], 8)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)


def test_resize_errors():
    with pytest.raises(ValueError, match="integer >= 1"):
        resize(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"\(N, B, S, S\)"):
        resize(torch.zeros(4, 4), 8)


# ---------------------------------------------------------------- random_augment


def test_random_augment_deterministic_and_varied():
    x = torch.from_numpy(_cutouts(n=16))
    a = random_augment(x, torch.Generator().manual_seed(3))
    b = random_augment(x, torch.Generator().manual_seed(3))
    c = random_augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == torch.float32


def test_random_augment_pure_dihedral_when_no_shift_or_jitter():
    x = torch.from_numpy(_cutouts(n=12, size=9))
    out = random_augment(x, torch.Generator().manual_seed(0), max_shift=0.0, flux_jitter=0.0)
    used = set()
    for i in range(len(x)):
        matches = [k for k in range(DIHEDRAL_TRANSFORMS) if torch.equal(out[i], dihedral(x[i], k))]
        assert matches, f"sample {i} is not a dihedral transform of its input"
        used.add(matches[0])
    assert len(used) > 1  # transforms drawn per sample, not one for the batch


def test_random_augment_subpixel_shift_and_flux_jitter():
    # A constant band stays constant under any shift; only the flux factor changes it.
    x = torch.ones(32, 2, 8, 8)
    out = random_augment(x, torch.Generator().manual_seed(1), max_shift=0.5, flux_jitter=0.1)
    per_band = out.flatten(2)
    assert torch.allclose(per_band, per_band[..., :1].expand_as(per_band), atol=1e-5)
    factors = per_band[..., 0]
    assert factors.min() >= 0.9 - 1e-6 and factors.max() <= 1.1 + 1e-6
    assert factors.std() > 0.02
    assert not torch.allclose(factors[:, 0], factors[:, 1])  # independent per band

    # Sub-pixel: a delta moves by less than a pixel and spreads over neighbours.
    delta = torch.zeros(64, 1, 11, 11)
    delta[:, :, 5, 5] = 1.0
    shifted = random_augment(
        delta, torch.Generator().manual_seed(2), max_shift=0.5, flux_jitter=0.0
    )
    assert torch.allclose(shifted.sum(dim=(-2, -1)), torch.ones(64, 1), atol=1e-5)
    peak = shifted.flatten(1).max(dim=1).values
    assert (peak < 0.999).any() and (peak >= 0.25 - 1e-6).all()
    assert shifted[:, :, 3:8, 3:8].sum(dim=(-2, -1)).allclose(torch.ones(64, 1), atol=1e-5)


def test_random_augment_fills_nan():
    x = torch.from_numpy(_cutouts(n=4))
    x[0, :, :3] = float("nan")
    x[1, 2] = float("nan")
    out = random_augment(x, torch.Generator().manual_seed(0))
    assert not torch.isnan(out).any()
    assert torch.all(out[1, 2] == 0)  # a band with no data at all stays flat (zero)


def test_random_augment_errors():
    with pytest.raises(ValueError, match="square"):
        random_augment(torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="max_shift"):
        random_augment(torch.zeros(1, 1, 4, 4), max_shift=-1)
    with pytest.raises(ValueError, match="flux_jitter"):
        random_augment(torch.zeros(1, 1, 4, 4), flux_jitter=1.5)
