"""Size and opening time of the ``clusterclf inspect`` page for big catalogues.

A 4000 x 4000 px simulated field with 3000 candidates (seed 7) is listed
several times at positions jittered by up to 3 px (seed 8), so that a
catalogue of ``--rows`` candidates has realistic cutouts; its machine
classes and probabilities are random (Dirichlet, seed 9): the page's
content does not depend on them. For each size the page is written with
`write_inspection_page` (timed), then opened ``--repeat`` times in
headless Chromium (Selenium), which reports, from the start of navigation:

* first contentful paint (the browser's ``first-contentful-paint`` entry);
* first page drawn (the page's ``clusterclf-first-page`` mark: the 100
  cutouts of page 1 on screen, the page usable);
* ``load`` (the whole file read);

and the time to draw the next page and to apply a confidence filter.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_inspect.py [--rows 2000 20000] [--repeat 3]

Not a test: nothing is asserted. Needs chromium, chromedriver and selenium.
"""

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "_data" / "inspect"


def catalogue(rows, field):
    """``rows`` candidates drawn from the field's catalogue, positions jittered."""
    from astropy.table import QTable

    rng = np.random.default_rng(8)
    base = field.catalog
    pick = np.resize(np.arange(len(base)), rows)
    table = QTable(base[pick])
    table["ID_PHANGS_CLUSTER"] = np.arange(1, rows + 1)
    jitter = np.where(np.arange(rows) < len(base), 0.0, 1.0)
    table["PHANGS_X"] = table["PHANGS_X"] + jitter * rng.uniform(-3, 3, rows)
    table["PHANGS_Y"] = table["PHANGS_Y"] + jitter * rng.uniform(-3, 3, rows)
    del table["PHANGS_RA"], table["PHANGS_DEC"]  # would disagree with the jitter
    probs = np.random.default_rng(9).dirichlet(np.ones(4), rows)
    table["class_ml"] = np.argmax(probs, axis=1) + 1
    table["class_ml_qual"] = probs.max(axis=1)
    for k in range(4):
        table[f"prob_class{k + 1}"] = probs[:, k]
    table["class_ml_flags"] = np.zeros(rows, dtype=np.int16)
    return table


def browser():
    from selenium import webdriver

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
    return webdriver.Chrome(options=options, service=service)


def wait(driver, script, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: d.execute_script(script))


def open_page(driver, url):
    """Times (s) from navigation start: first paint, page 1 drawn, load."""
    driver.get("about:blank")
    driver.get(url)
    wait(
        driver,
        "return performance.getEntriesByName('clusterclf-first-page').length > 0"
        " && document.readyState === 'complete'",
    )
    return driver.execute_script("""
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        const page = performance.getEntriesByName('clusterclf-first-page')[0];
        const nav = performance.getEntriesByType('navigation')[0];
        return [fcp ? fcp.startTime / 1000 : null, page.startTime / 1000,
                nav.loadEventEnd / 1000];""")


def interaction(driver, script):
    """Seconds until the page is drawn again after ``script``."""
    driver.execute_script("document.body.dataset.ready = '0';")
    start = time.perf_counter()
    driver.execute_script(script)
    wait(driver, "return document.body.dataset.ready === '1'")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.inspect_page import write_inspection_page

    DATA.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    field = simulate_field(shape=(4000, 4000), n_candidates=3000, seed=7)
    images = field.to_multiband_image()
    print(f"simulated the field in {time.perf_counter() - start:.1f} s")
    driver = browser()
    version = driver.capabilities["browserVersion"]
    try:
        print(
            "| candidates | write | file size | first contentful paint | page 1 drawn | "
            "load (whole file) | next page | filter p >= 0.5 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for rows in args.rows:
            table = catalogue(rows, field)
            page = DATA / f"inspect_{rows}.html"
            start = time.perf_counter()
            write_inspection_page(table, images, page, overwrite=True, progress_bar=False)
            written = time.perf_counter() - start
            size = page.stat().st_size / 1e6
            opened = np.array([open_page(driver, page.as_uri()) for _ in range(args.repeat)])
            flip = interaction(driver, "document.getElementById('next').click();")
            filtered = interaction(
                driver,
                """const p = document.getElementById('pmin');
                p.value = '0.5'; p.dispatchEvent(new Event('input'));""",
            )
            fcp, drawn, load = np.median(opened, axis=0)
            print(
                f"| {rows} | {written:.1f} s | {size:.1f} MB ({size * 1e3 / rows:.2f} kB "
                f"each) | {fcp:.2f} s | {drawn:.2f} s | {load:.2f} s | {flip:.2f} s | "
                f"{filtered:.2f} s |"
            )
    finally:
        driver.quit()
    print(f"medians of {args.repeat} openings; Chromium {version}")


if __name__ == "__main__":
    main()
