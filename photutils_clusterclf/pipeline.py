"""The file-level pipeline: read images and candidates, classify, write catalogue + DS9 file.

`classify_files` is what ``clusterclf classify`` does; the demo and the
many-galaxy runner (`~photutils_clusterclf.many`) call it too, so that
every route from files to a classified catalogue is the same code.
`write_classified` writes a classified catalogue and its DS9 region file
together: both are renamed into place only once both are complete.
"""

import contextlib
import os

from .catalogs import read_candidates
from .classifier import ClusterClassifier
from .fileio import atomic_output, check_writable, table_format, write_table
from .images import MultiBandImage
from .regions_io import write_class_regions

__all__ = ["classify_files", "write_classified"]


def write_classified(table, path, regions=None, *, overwrite=False, **region_options):
    """Write a classified catalogue and, optionally, its DS9 region file, together.

    Both files are written to temporary files first and renamed into place
    only once both are complete, so a failure or an interruption leaves
    neither (and damages no existing file).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The classified catalogue.
    path : str or `~pathlib.Path`
        Output catalogue (see `~photutils_clusterclf.fileio.write_table` for
        the formats).
    regions : str or `~pathlib.Path`, optional
        Also write a DS9 region file of the classes here.
    overwrite : bool, optional
        Replace existing outputs.
    **region_options
        Options of `~photutils_clusterclf.regions_io.class_regions` (``column``,
        ``origin``, ``use``, ...).
    """
    table_format(path)  # an unknown format is refused before anything is written
    with contextlib.ExitStack() as stack:
        write_table(table, stack.enter_context(atomic_output(path, overwrite=overwrite)))
        if regions is not None:
            tmp_regions = stack.enter_context(atomic_output(regions, overwrite=overwrite))
            write_class_regions(table, tmp_regions, **region_options)


def _opened(images, reference_band, check_bands):
    """Context manager over the images: files are opened (all bands) and closed here."""
    if isinstance(images, MultiBandImage):
        return contextlib.nullcontext(images)  # the caller's images: not ours to close
    # All bands, not only the model's: positions refer to the reference band,
    # which need not be one of the model's bands.
    return MultiBandImage.from_fits(images, reference_band=reference_band, check_bands=check_bands)


def classify_files(
    model,
    catalog,
    images,
    out=None,
    *,
    regions=None,
    overwrite=False,
    sha256=None,
    device="auto",
    reference_band=None,
    check_bands=True,
    progress_bar=False,
    require_overlap=False,
    **classify_kwargs,
):
    """Classify a catalogue with images on disk; write the catalogue (and DS9 file).

    This is what ``clusterclf classify`` does; the demo, the many-galaxy
    runner and scripts call it to go through exactly the same path.

    Parameters
    ----------
    model : str, `~pathlib.Path` or `~photutils_clusterclf.ClusterClassifier`
        Checkpoint file, or a loaded classifier.
    catalog : str, `~pathlib.Path` or source
        Candidate catalogue file (FITS, ECSV, CSV, LEGUS ``.tab``), DS9
        ``.reg`` file, or any in-memory source accepted by
        `~photutils_clusterclf.ClusterClassifier.classify`.
    images : str, `~pathlib.Path`, dict or `~photutils_clusterclf.MultiBandImage`
        Directory of PHANGS-named band files, a mapping band -> file, or
        opened images (left open).
    out : str or `~pathlib.Path`, optional
        Output catalogue (``.fits``, ``.ecsv``, ``.csv``); nothing is
        written without it.
    regions : str or `~pathlib.Path`, optional
        Also write a DS9 region file of the predicted classes; it and the
        catalogue are renamed into place only once both are complete.
    overwrite : bool, optional
        Replace existing outputs.
    sha256 : str, optional
        Expected SHA-256 of the model file.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (when ``model`` is a file).
    reference_band : str, optional
        Reference band of images read from files (see
        `~photutils_clusterclf.MultiBandImage`).
    check_bands : bool, optional
        Refuse band files whose header or PHANGS name says another band
        (see `~photutils_clusterclf.MultiBandImage.from_fits`).
    progress_bar : bool, optional
        Show a progress bar.
    require_overlap : bool, optional
        Raise `ValueError` (and write nothing) when candidates were given but
        none of them could be classified (all off the images, or where a
        band has no data). Without it, `~photutils_clusterclf.ClusterClassifier.classify`
        only warns.
    **classify_kwargs
        Passed to `~photutils_clusterclf.ClusterClassifier.classify`.

    Returns
    -------
    table : `~astropy.table.QTable`
        The classified catalogue, as written.
    """
    if out is not None:
        table_format(out)
        check_writable(out, overwrite=overwrite)
    if regions is not None:
        if out is None:
            raise ValueError("regions needs out: the DS9 file is written with the catalogue")
        check_writable(regions, overwrite=overwrite)
    if isinstance(model, ClusterClassifier):
        clf = model
    else:
        clf = ClusterClassifier.load(model, device=device, sha256=sha256)
    source = read_candidates(catalog) if isinstance(catalog, (str, os.PathLike)) else catalog
    with _opened(images, reference_band, check_bands) as opened:
        table = clf.classify(source, opened, progress_bar=progress_bar, **classify_kwargs)
    n_classified = table.meta["clusterclf"]["n_classified"]
    if require_overlap and len(table) and not n_classified:
        raise ValueError(
            f"none of the {len(table)} candidates of {catalog} could be "
            "classified: they lie off the images or where a band has no data; "
            "nothing was written. Check that the catalogue and the images are "
            "of the same field, and the pixel origin (--origin) or the sky "
            "columns (--use sky)"
        )
    if out is not None:
        write_classified(
            table,
            out,
            regions,
            overwrite=overwrite,
            **clf.region_options(source, **classify_kwargs),
        )
    return table
