"""Simulated PHANGS-HST-like fields for tests, demos and benchmarks.

`simulate_field` makes a 5-band field with cluster candidates of known
class; `mock_from_catalog` places simulated candidates at the positions,
magnitudes and classes of a real catalogue; `noisy_labels` draws human-like
noisy labels; `detected_catalog` turns the injected list into the
detections a PHANGS-like pipeline would keep; `plot_field` draws an RGB view and a per-class gallery.
"""

from .detect import detected_catalog
from .figures import plot_field
from .labels import HUMAN_LABEL_NOISE, label_noise_matrix, noisy_labels
from .render import eff_core_radius
from .simulate import (
    ACS_BANDS,
    BAND_SPECS,
    DEFAULT_CLASS_MIX,
    PIXEL_SCALE,
    SimulatedField,
    WFC3_BANDS,
    mock_from_catalog,
    simulate_field,
)

__all__ = [
    "ACS_BANDS",
    "BAND_SPECS",
    "DEFAULT_CLASS_MIX",
    "HUMAN_LABEL_NOISE",
    "PIXEL_SCALE",
    "SimulatedField",
    "WFC3_BANDS",
    "detected_catalog",
    "eff_core_radius",
    "label_noise_matrix",
    "mock_from_catalog",
    "noisy_labels",
    "plot_field",
    "simulate_field",
]
