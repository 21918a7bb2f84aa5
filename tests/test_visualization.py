"""Tests of the figures: confusion matrix, RGB view, overlay, gallery, files."""

import matplotlib.image as mpimg
import numpy as np
import pytest
from astropy.table import Table
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from photutils_clusterclf.classes import DEFAULT_COLORS
from photutils_clusterclf.evaluation import EvaluationReport
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.visualization import (
    CLASS_LABELS,
    plot_confusion_matrix,
    plot_cutout_gallery,
    plot_overlay,
    rgb_image,
    save_confusion_matrix,
    save_figure,
    save_overlay,
)

MATRIX = np.array([[8, 1, 0, 1], [2, 5, 2, 1], [0, 3, 6, 1], [0, 0, 4, 16]])


def _cell_texts(ax):
    """Annotation text of each cell, keyed by (row, column)."""
    return {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }


def test_confusion_matrix_counts():
    ax = plot_confusion_matrix(MATRIX, normalize=False, title="t")
    texts = _cell_texts(ax)
    assert len(texts) == 16
    for (i, j), text in texts.items():
        assert text == str(MATRIX[i, j])
    assert ax.get_title() == "t"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert isinstance(ax.figure, Figure)


def test_confusion_matrix_normalized():
    ax = plot_confusion_matrix(MATRIX)
    texts = _cell_texts(ax)
    fractions = MATRIX / MATRIX.sum(axis=1, keepdims=True)
    for (i, j), text in texts.items():
        value, count = text.split("\n")
        assert float(value) == pytest.approx(fractions[i, j], abs=0.005)
        assert count == f"({MATRIX[i, j]})"
    image = ax.images[0].get_array()
    assert np.allclose(image, fractions)


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="labels"):
        plot_confusion_matrix(np.ones((3, 3)))


def test_report_plot_and_save(tmp_path):
    truth = np.repeat([1, 2, 3, 4], 5)
    pred = np.array([1] * 5 + [2, 2, 1, 1, 4] + [3] * 5 + [4, 4, 4, 3, 3])
    report = EvaluationReport(truth, pred, truth_name="human", pred_name="cnn")
    ax = report.plot_confusion_matrix(normalize=False)
    assert _cell_texts(ax)[(1, 0)] == "2"
    assert ax.get_title() == "cnn vs human"
    path = tmp_path / "cm.png"
    save_confusion_matrix(report, path)
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.shape[0] > 100
    with pytest.raises(FileExistsError):
        save_confusion_matrix(report.confusion_matrix, path)
    before = path.read_bytes()
    save_confusion_matrix(report.confusion_matrix, path, overwrite=True, normalize=False)
    assert path.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png"]  # no temp left


def test_save_figure_rules(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    with pytest.raises(ValueError, match="extension"):
        save_figure(fig, tmp_path / "noext")
    with pytest.raises(FileNotFoundError):
        save_figure(fig, tmp_path / "missing_dir" / "a.png")
    save_figure(fig, tmp_path / "a.pdf")
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")


def _images(shape=(60, 80), seed=0):
    rng = np.random.default_rng(seed)
    bands = ("F275W", "F336W", "F438W", "F555W", "F814W")
    arrays = {}
    for k, band in enumerate(bands):
        data = rng.normal(1.0, 0.1, size=shape)
        data[30, 40] += 10 * (k + 1)  # a source brighter in red bands
        arrays[band] = data
    return arrays


def test_rgb_image_range_and_channels():
    arrays = _images()
    rgb = rgb_image(arrays)
    assert rgb.shape == (60, 80, 3)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert np.allclose(rgb[30, 40], 1)  # the bright source saturates
    # default channels are F814W, F555W, F438W: swapping F814W changes red only
    swapped = dict(arrays, F814W=arrays["F275W"])
    other = rgb_image(swapped)
    assert not np.allclose(other[..., 0], rgb[..., 0])
    assert np.allclose(other[..., 1:], rgb[..., 1:])
    for stretch in ("linear", "lupton"):
        view = rgb_image(arrays, stretch=stretch)
        assert view.shape == (60, 80, 3) and 0 <= view.min() and view.max() <= 1
    with pytest.raises(ValueError, match="stretch"):
        rgb_image(arrays, stretch="log10")
    with pytest.raises(KeyError, match="F999W"):
        rgb_image(arrays, bands=("F999W", "F555W", "F438W"))


def test_rgb_image_region_and_downsampling():
    arrays = _images((300, 500))
    view = rgb_image(arrays, region=(100, 200, 50, 90))
    assert view.shape == (40, 100, 3)
    small = rgb_image(arrays, max_size=100)
    assert max(small.shape[:2]) <= 100
    assert small.shape == (60, 100, 3)  # stride 5
    with pytest.raises(ValueError, match="does not overlap"):
        rgb_image(arrays, region=(600, 700, 0, 10))


def test_rgb_image_multiband_image():
    arrays = _images()
    images = MultiBandImage.from_arrays(arrays)
    assert np.allclose(rgb_image(images), rgb_image(arrays))


def _table():
    # class 0 and the NaN position are not drawn; the off-region row neither
    return Table(
        {
            "x": [10.0, 20.0, 30.0, 40.0, 50.0, np.nan, 70.0],
            "y": [10.0, 20.0, 30.0, 40.0, 50.0, 20.0, 55.0],
            "class_ml": np.array([1, 2, 3, 4, 0, 2, 1], dtype=np.int16),
        }
    )


def _circles(ax):
    """(centre, radius, class, rgba edge colour) of every overlay circle."""
    out = []
    for coll in ax.collections:
        cls = int(coll.get_gid().removeprefix("class"))
        colour = tuple(coll.get_edgecolor()[0])
        for path in coll.get_paths():
            lo, hi = path.vertices.min(axis=0), path.vertices.max(axis=0)
            centre = tuple(np.round((lo + hi) / 2, 6))
            out.append((centre, round((hi[0] - lo[0]) / 2, 6), cls, colour))
    return sorted(out)


def test_overlay_circles_and_colours():
    images = MultiBandImage.from_arrays(_images())
    ax = plot_overlay(images, _table(), origin=0, radius=4)
    circles = _circles(ax)
    assert len(circles) == 5  # rows with class 1-4 and a valid position
    expected = [((10, 10), 1), ((20, 20), 2), ((30, 30), 3), ((40, 40), 4), ((70, 55), 1)]
    for (centre, radius, cls, colour), (pos, exp_cls) in zip(circles, expected):
        assert centre == pos and cls == exp_cls and radius == 4
        assert colour == to_rgba(DEFAULT_COLORS[cls])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [CLASS_LABELS[c] for c in (1, 2, 3, 4)]


def test_overlay_origin_region_and_colors():
    table = _table()
    table.meta["origin"] = 1  # 1-based positions: circles shift by -1
    colors = {1: "magenta", 2: "cyan", 3: "white", 4: "orange"}
    ax = plot_overlay(_images(), table, region=(0, 35, 0, 35), colors=colors, legend=False)
    circles = _circles(ax)
    assert [c[0] for c in circles] == [(9, 9), (19, 19), (29, 29)]
    assert [c[3] for c in circles] == [to_rgba(colors[c]) for c in (1, 2, 3)]
    assert ax.get_legend() is None
    assert ax.get_xlim() == (-0.5, 34.5)
    with pytest.raises(KeyError, match="class column 'nope'"):
        plot_overlay(_images(), table, column="nope")


def test_save_overlay(tmp_path):
    path = tmp_path / "overlay.png"
    save_overlay(_images(), _table(), path, origin=0, dpi=50)
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50
    with pytest.raises(FileExistsError):
        save_overlay(_images(), _table(), path, origin=0)


def test_cutout_gallery():
    rng = np.random.default_rng(3)
    cutouts = rng.normal(size=(20, 5, 16, 16))
    cutouts[0, :, 0, 0] = np.nan
    labels = np.array([1] * 8 + [2] * 3 + [3] * 5 + [4] * 4)
    fig = plot_cutout_gallery(cutouts, labels, n_per_class=4)
    axes = fig.axes
    assert len(axes) == 16
    shown = [len(ax.images) for ax in axes]
    # class 2 has only 3 examples: its 4th panel is empty
    assert shown == [1] * 4 + [1, 1, 1, 0] + [1] * 4 + [1] * 4
    first = axes[0].images[0].get_array()
    assert first.shape == (16, 16, 3) and np.all(np.isfinite(first))
    grey = plot_cutout_gallery(
        cutouts,
        labels,
        bands=["F555W"],
        n_per_class=2,
        band_names=("F275W", "F336W", "F438W", "F555W", "F814W"),
    )
    assert grey.axes[0].images[0].get_array().shape == (16, 16)
    with pytest.raises(ValueError, match="labels"):
        plot_cutout_gallery(cutouts, labels[:5])
    with pytest.raises(ValueError, match="bands"):
        plot_cutout_gallery(cutouts, labels, bands=(0, 9, 1))


def test_no_pyplot_state():
    # library figures are not registered with pyplot, so nothing leaks
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_confusion_matrix(MATRIX)
    plot_overlay(_images(), _table(), origin=0)
    assert plt.get_fignums() == before


@pytest.mark.parametrize("stretch", ["asinh", "linear"])
def test_band_stretch_is_astropys_interval_and_stretch(stretch):
    from astropy.visualization import AsinhStretch, LinearStretch, ManualInterval

    from photutils_clusterclf.visualization import _stretch_band

    data = np.random.default_rng(3).lognormal(size=(40, 50))
    data[0, :5] = np.nan
    low, high = np.nanmedian(data), np.nanpercentile(data, 99.5)
    band = _stretch_band(data, stretch)
    expected = (AsinhStretch(a=0.1) if stretch == "asinh" else LinearStretch())(
        ManualInterval(low, high)(np.nan_to_num(data, nan=low), clip=True)
    )
    np.testing.assert_allclose(band, expected, rtol=0, atol=1e-12)
    # The background is black, the 99.5th percentile white, NaN pixels background.
    assert band[0, :5].tolist() == [0.0] * 5
    assert band.min() == 0.0 and band.max() == 1.0
    assert np.mean(band == 1.0) == pytest.approx(0.005, abs=0.002)
