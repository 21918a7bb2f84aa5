import numpy as np
import pytest

from photutils_clusterclf.classes import CLASSES, DEFAULT_COLORS, PHANGS_FOLD, fold_classes


def test_classes_and_colours():
    assert CLASSES == (1, 2, 3, 4)
    assert [DEFAULT_COLORS[k] for k in CLASSES] == ["red", "green", "blue", "yellow"]


def test_fold_phangs_codes():
    codes = np.arange(0, 22)
    folded = fold_classes(codes)
    assert list(folded[1:5]) == [1, 2, 3, 4]
    assert np.all(folded[5:20] == 4)
    assert folded[0] == 0 and folded[20] == 0 and folded[21] == 0
    assert folded.dtype == np.int16
    assert set(PHANGS_FOLD) == set(range(5, 20))


def test_fold_floats_masked_nan_and_noninteger():
    codes = np.ma.array([4.0, 1.0, np.nan, 2.5, -1, 3.0], mask=[0, 1, 0, 0, 0, 0])
    assert list(fold_classes(codes)) == [4, 0, 0, 0, 0, 3]


def test_fold_custom_mapping_can_merge_and_disable():
    assert list(fold_classes([1, 2, 5], mapping={2: 1})) == [1, 1, 0]
    assert list(fold_classes([5, 4], mapping={})) == [0, 4]
    with pytest.raises(ValueError, match="targets must be one of"):
        fold_classes([5], mapping={5: 7})
