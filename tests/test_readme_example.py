"""The README's Python example runs as written, on simulated files, and leaves no file open."""

import os
import re
import subprocess
import sys
from pathlib import Path

from photutils_clusterclf import ClusterClassifier, build_model
from photutils_clusterclf.datasets import simulate_field

ROOT = Path(__file__).resolve().parents[1]


def _readme_example():
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_readme_example_leaves_no_resource_warning(tmp_path):
    code = _readme_example()
    # The files the example names, made from a small simulated field.
    catalog_name = re.search(r'Table\.read\("([^"]+)"\)', code).group(1)
    mosaics = re.search(r'MultiBandImage\.from_fits\("([^"]+)"\)', code).group(1)
    field = simulate_field(shape=(200, 200), n_candidates=12, seed=3)
    (tmp_path / mosaics).mkdir()
    paths = field.write(tmp_path / mosaics)
    paths["catalog"].rename(tmp_path / catalog_name)
    ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=5, n_classes=4),
        arch="small_cnn",
        bands=field.bands,
        cutout_size=16,
        device="cpu",
    ).save(tmp_path / "model.pt")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "class_ml" in result.stdout
    assert (tmp_path / "classified.fits").is_file() and (tmp_path / "classes.reg").is_file()
    assert "ResourceWarning" not in result.stderr, result.stderr
