"""The inspection page in a real browser: headless Chromium driven by Selenium.

An expert's session: open the page, filter, label three candidates with
the keyboard, reload (the labels survive in local storage), export, read
the export with astropy and train a model on it with ``clusterclf train``.
"""

import shutil

import numpy as np
import pytest
from astropy.table import Table
from helpers import assert_same_cutout, classified_field, require_programs

from photutils_clusterclf import extract_cutouts
from photutils_clusterclf.catalogs import read_catalog
from photutils_clusterclf.classes import fold_classes
from photutils_clusterclf.cli import main
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.inspect_page import LABEL_COLUMN, inspection_order
from photutils_clusterclf.training import TrainingSet
from photutils_clusterclf.visualization import stretch_cutouts

pytestmark = pytest.mark.slow  # starts Chromium


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    require_programs("chromium", "chromedriver", modules=["selenium"])
    from selenium import webdriver

    directory = tmp_path_factory.mktemp("browser")
    table, catalog, _ = classified_field(directory, shape=(300, 300), n_candidates=130, seed=21)
    html = directory / "inspect.html"
    assert (
        main(
            [
                "inspect",
                "--catalog",
                str(catalog),
                "--images-dir",
                str(directory),
                "--out",
                str(html),
                "--quiet",
            ]
        )
        == 0
    )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    # An explicit driver: Selenium Manager would look for one on the network.
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.get(html.as_uri())
    _wait_ready(driver)
    yield driver, table, directory
    driver.quit()


def _wait_ready(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'")
    )


def _keys(driver, *keys):
    """Press keys on the page (not in a form field)."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("document.activeElement.blur()")
    chain = ActionChains(driver)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def _text(driver, element_id):
    return driver.find_element("id", element_id).text


def _click(driver, element_id):
    driver.find_element("id", element_id).click()


def _top_probability(table):
    classes = np.asarray(table["class_ml"])
    probs = np.stack([table[f"prob_class{k}"] for k in range(1, 5)], axis=1)
    return np.where(classes > 0, probs[np.arange(len(table)), np.maximum(classes, 1) - 1], np.nan)


def test_first_page_shows_the_most_uncertain_candidates(page):
    driver, table, directory = page
    order = inspection_order(table)
    cards = driver.find_elements("css selector", "#grid .card")
    assert len(cards) == 100 and _text(driver, "pageinfo") == "1 / 2"
    shown = [int(c.find_element("css selector", ".id").text) for c in cards[:5]]
    assert shown == list(table["ID_PHANGS_CLUSTER"][order[:5]])
    # The first card's composite canvas shows that candidate's cutout.
    pixels = driver.execute_script("""
        const c = document.querySelector('#grid .card canvas');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);""")
    drawn = np.array(pixels, float).reshape(32, 32, 4)[..., :3]
    images = MultiBandImage.from_fits(directory)
    row = order[0]
    cut = extract_cutouts(
        images, table["PHANGS_X"][row : row + 1], table["PHANGS_Y"][row : row + 1], size=32
    )
    levels = np.round(stretch_cutouts(cut.data[0]) * 255)
    for channel, band in enumerate(("F814W", "F555W", "F438W")):
        assert_same_cutout(drawn[..., channel], levels[images.bands.index(band)][::-1])


def test_filter_by_class_and_confidence(page):
    driver, table, _ = page
    top = _top_probability(table)
    pmin = driver.find_element("id", "pmin")
    pmin.clear()
    pmin.send_keys(f"{np.nanmedian(top):.3f}")
    # the page holds 4 decimals; rows without a class (NaN) stay
    expected = int(np.sum(~(np.round(top, 4) < round(np.nanmedian(top), 3))))
    assert _text(driver, "counts").startswith(f"{expected} of 130 shown")
    pmin.clear()
    pmin.send_keys("0")
    majority = np.bincount(table["class_ml"], minlength=5)
    for cls in range(5):
        box = driver.find_element("css selector", f".fclass[value='{cls}']")
        if cls != int(np.argmax(majority)):
            box.click()
    assert _text(driver, "counts").startswith(f"{majority.max()} of 130 shown")
    for cls in range(5):
        box = driver.find_element("css selector", f".fclass[value='{cls}']")
        if not box.is_selected():
            box.click()
    assert _text(driver, "counts").startswith("130 of 130 shown")


def test_keyboard_labels_survive_reload_export_and_train(page, tmp_path):
    driver, table, directory = page
    order = inspection_order(table)
    _keys(driver, "2", "j", "3", "0", "7")  # 2; skip one; 3; PHANGS code 17
    assert "3 labelled" in _text(driver, "counts")
    driver.refresh()
    _wait_ready(driver)
    assert "3 labelled" in _text(driver, "counts")  # kept in local storage
    labelled = table["ID_PHANGS_CLUSTER"][order[[0, 2, 3]]]

    _click(driver, "export-ecsv")
    ecsv = driver.find_element("id", "export-text").get_attribute("value")
    labels = Table.read(ecsv, format="ascii.ecsv")
    assert list(labels["ID_PHANGS_CLUSTER"]) == list(labelled)
    assert list(labels[LABEL_COLUMN]) == [2, 3, 17]
    assert labels.meta["origin"] == 0
    rows = order[[0, 2, 3]]
    np.testing.assert_array_equal(labels["PHANGS_X"], table["PHANGS_X"][rows])

    _click(driver, "export-csv")
    csv = driver.find_element("id", "export-text").get_attribute("value")
    back = Table.read(csv, format="ascii.csv")
    assert list(back[LABEL_COLUMN]) == [2, 3, 17]
    assert list(back["ID_PHANGS_CLUSTER"]) == list(labelled)

    # The export is a training catalogue as it stands: PHANGS code 17 folds to 4.
    path = tmp_path / "labels.ecsv"
    path.write_text(ecsv)
    images = MultiBandImage.from_fits(directory)
    training_set = TrainingSet.from_galaxies(
        [(read_catalog(path), images, "sim")],
        label_column=LABEL_COLUMN,
        cutout_size=32,
        progress_bar=False,
    )
    assert list(training_set.labels) == list(fold_classes([2, 3, 17]))
    model = tmp_path / "model.pt"
    assert (
        main(
            [
                "train",
                "--galaxy",
                f"{path}={directory}",
                "--label-column",
                LABEL_COLUMN,
                "--out",
                str(model),
                "--arch",
                "small_cnn",
                "--weights",
                "none",
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert model.exists()

    # Labels join back onto the full catalogue on the id column.
    from astropy.table import join

    joined = join(
        table,
        labels[["ID_PHANGS_CLUSTER", LABEL_COLUMN]],
        keys="ID_PHANGS_CLUSTER",
        join_type="left",
    )
    assert len(joined) == len(table) and joined[LABEL_COLUMN].count() == 3


def test_single_band_cutouts_on_demand(page):
    from selenium.webdriver.support.ui import WebDriverWait

    driver, table, directory = page
    card = driver.find_element("css selector", "#grid .card.current")
    bands = card.find_element("css selector", ".bands")
    assert not bands.is_displayed()
    _keys(driver, "b")
    WebDriverWait(driver, 30).until(lambda d: card.get_attribute("data-bands") == "drawn")
    assert bands.is_displayed()
    assert [b.text for b in bands.find_elements("css selector", "div")] == list(
        MultiBandImage.from_fits(directory).bands
    )
    pixels = driver.execute_script("""
        const c = document.querySelector('#grid .card.current .bands canvas');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);""")
    drawn = np.array(pixels, float).reshape(32, 32, 4)[..., 0]
    row = inspection_order(table)[int(card.get_attribute("data-index"))]
    cut = extract_cutouts(
        MultiBandImage.from_fits(directory),
        table["PHANGS_X"][row : row + 1],
        table["PHANGS_Y"][row : row + 1],
        size=32,
    )
    assert_same_cutout(drawn, np.round(stretch_cutouts(cut.data[0, 0]) * 255)[::-1])  # F275W
