"""The inspection page's content, written without a browser (see test_inspect_browser.py)."""

import base64
import io
import json
import re

import numpy as np
import pytest
from astropy.table import QTable, Table
from helpers import assert_same_cutout, classified_field
from PIL import Image

from photutils_clusterclf import extract_cutouts
from photutils_clusterclf.cli import main
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.inspect_page import (
    CHUNK,
    LABEL_COLUMN,
    inspection_order,
    write_inspection_page,
)
from photutils_clusterclf.visualization import _stretch_band, stretch_cutouts


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inspect")
    table, catalog, _ = classified_field(directory, shape=(300, 300), n_candidates=130, seed=11)
    return table, catalog, directory


def _blocks(page):
    """The page's JSON blocks by id."""
    text = page.read_text(encoding="utf-8")
    return {
        m[1]: json.loads(m[2])
        for m in re.finditer(
            r'<script type="application/json" id="([\w-]+)">(.*?)</script>', text, flags=re.DOTALL
        )
    }


def _decode(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_stretch_cutouts_is_the_figures_stretch():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 3, 16, 16)) ** 3
    data[0, 1, :4] = np.nan
    data[2, 0] = np.nan  # a plane without data
    for stretch in ("asinh", "linear"):
        scaled = stretch_cutouts(data, stretch=stretch)
        expected = [[_stretch_band(data[i, b], stretch) for b in range(3)] for i in range(6)]
        np.testing.assert_allclose(scaled, expected, atol=1e-12)
    assert np.all(stretch_cutouts(data)[2, 0] == 0)
    with pytest.raises(ValueError, match="stretch must be"):
        stretch_cutouts(data, stretch="lupton")


def test_uncertain_order_puts_lowest_class_probability_first():
    probs = np.array(
        [
            [0.9, 0.05, 0.03, 0.02],
            [0.4, 0.3, 0.2, 0.1],
            [np.nan] * 4,
            [0.1, 0.6, 0.2, 0.1],
            [0.4, 0.2, 0.2, 0.2],
        ]
    )
    t = QTable({"ID": [5, 3, 9, 1, 7], "class_ml": [1, 1, 0, 2, 1]})
    for k in range(4):
        t[f"prob_class{k + 1}"] = probs[:, k]
    # 0.4 twice: the higher entropy (row 4) first; unclassified (row 2) last
    assert list(inspection_order(t)) == [4, 1, 3, 0, 2]
    assert list(inspection_order(t, order="class")) == [4, 1, 0, 3, 2]
    assert list(inspection_order(t, order="id")) == [3, 1, 0, 4, 2]
    with pytest.raises(ValueError, match="order must be one of"):
        inspection_order(t, order="random")
    with pytest.raises(KeyError, match="no probability columns"):
        inspection_order(t[["ID", "class_ml"]])


def test_page_holds_every_candidate_with_its_cutouts(field, tmp_path):
    table, _, directory = field
    images = MultiBandImage.from_fits(directory)
    page = tmp_path / "page.html"
    assert write_inspection_page(table, images, page, progress_bar=False) == 130
    blocks = _blocks(page)
    meta = blocks["meta"]
    order = inspection_order(table)
    assert meta["ids"] == list(table["ID_PHANGS_CLUSTER"][order])
    assert meta["cls"] == list(table["class_ml"][order])
    assert meta["human"]["CLASS_TRUE"] == list(table["CLASS_TRUE"][order])
    assert meta["rgb"] == ["F814W", "F555W", "F438W"]
    assert sorted(k for k in blocks if k.startswith("chunk-")) == ["chunk-0", "chunk-1"]
    # The second sheet's first cell is the 101st candidate: its colour
    # composite is the package's stretch of its F814W, F555W, F438W cutouts.
    row = order[CHUNK]
    cut = extract_cutouts(
        images, table["PHANGS_X"][row : row + 1], table["PHANGS_Y"][row : row + 1], size=32
    )
    expected = np.round(stretch_cutouts(cut.data[0]) * 255)
    rgb = _decode(blocks["chunk-1"]["rgb"]).astype(float)
    grey = _decode(blocks["chunk-1"]["bands"][0]).astype(float)
    for sheet, band in (
        (rgb[..., 0], "F814W"),
        (rgb[..., 1], "F555W"),
        (rgb[..., 2], "F438W"),
        (grey, "F275W"),
    ):
        plane = expected[images.bands.index(band)][::-1]  # image row 0 at the top
        # the next cell holds another candidate
        assert_same_cutout(sheet[:32, :32], plane, other=sheet[:32, 32:64])


def test_export_header_reads_back_with_the_catalogue_columns(field, tmp_path):
    table, _, directory = field
    images = MultiBandImage.from_fits(directory)
    page = tmp_path / "page.html"
    write_inspection_page(table, images, page, max_rows=5, order="id", progress_bar=False)
    meta = _blocks(page)["meta"]
    assert meta["n"] == 5 and meta["ids"] == [1, 2, 3, 4, 5]
    # What the page's export does: header, names line, one row per label.
    rows = [" ".join(str(col[i]) for col in meta["export_values"]) + f" {i + 2}" for i in range(2)]
    text = meta["ecsv_header"] + " ".join(meta["export_names"] + [LABEL_COLUMN]) + "\n"
    back = Table.read(text + "\n".join(rows) + "\n", format="ascii.ecsv")
    assert back.colnames == [
        "ID_PHANGS_CLUSTER",
        "PHANGS_X",
        "PHANGS_Y",
        "PHANGS_RA",
        "PHANGS_DEC",
        LABEL_COLUMN,
    ]
    assert back.meta["origin"] == 0 and back["PHANGS_RA"].unit == "deg"
    np.testing.assert_array_equal(back["PHANGS_X"], table["PHANGS_X"][:2])
    assert list(back[LABEL_COLUMN]) == [2, 3]


def test_table_without_id_column_uses_row_numbers(field, tmp_path):
    table, _, directory = field
    images = MultiBandImage.from_fits(directory)
    page = tmp_path / "page.html"
    anonymous = table.copy()
    del anonymous["ID_PHANGS_CLUSTER"]
    write_inspection_page(anonymous, images, page, order="id", max_rows=3, progress_bar=False)
    meta = _blocks(page)["meta"]
    assert meta["id_column"] == "row" and meta["ids"] == [0, 1, 2]
    assert meta["export_names"][0] == "row"
    assert "row" not in anonymous.colnames


def test_inspect_command(field, tmp_path, capsys):
    _, catalog, directory = field
    out = tmp_path / "inspect.html"
    argv = [
        "inspect",
        "--catalog",
        str(catalog),
        "--images-dir",
        str(directory),
        "--out",
        str(out),
        "--max",
        "20",
        "--order",
        "class",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out and _blocks(out)["meta"]["n"] == 20
    before = out.read_bytes()
    assert main(argv) == 2  # no overwrite without --overwrite
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv, "--overwrite", "--max", "3"]) == 0
    assert _blocks(out)["meta"]["n"] == 3
    assert main([*argv[:-5], "--column", "nope", "--overwrite"]) == 2
    assert "class column 'nope' not in the table" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--max", "0"]) == 2
    assert "max_rows must be a positive" in capsys.readouterr().err
    assert _blocks(out)["meta"]["n"] == 3  # the refused runs left the page alone
