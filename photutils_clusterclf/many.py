"""Classify many galaxies: serially, or one task per galaxy on a Dask cluster.

`classify_many` runs the same per-galaxy function (`classify_galaxy`) in
both modes, so a Dask run gives exactly the tables a serial run gives.
On Dask only file paths travel to the workers: each worker opens the
(memory-mapped) images itself and loads the model once, keeping it in a
small per-process cache keyed by the checkpoint's path, SHA-256 and
device. The SHA-256 is computed on the client and checked on every
worker, so all galaxies are classified by the same model file.

Reruns: after a galaxy's outputs are complete, a small completion record
(``<name>_done.json``, next to the catalogue) stores the SHA-256 of each
output file, of the model and the classification options. A rerun of the
same galaxies without ``overwrite`` skips every galaxy whose record
matches its files on disk and does only the rest, so a run interrupted by
a lost worker or a killed job is finished by running it again.

Errors are handled at two levels. Bad *arguments* (a missing or corrupt
model, duplicate galaxy names, an output that exists without
``overwrite``) stop the run before any galaxy is processed. A *galaxy*
that fails (unreadable catalogue, corrupt image) does not stop the
others: its exception is collected, the remaining galaxies are
classified and written, and `ClassifyManyError` is raised at the end
with the successful tables and the per-galaxy errors attached.
"""

import collections
import contextlib
import csv
import dataclasses
import json
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from astropy.table import QTable

from .checkpoint import load_checkpoint
from .classifier import ClusterClassifier
from .fileio import atomic_output, check_writable, sha256_file
from .images import MultiBandImage
from .pipeline import classify_files
from .utils.progress import add_progress_bar

__all__ = [
    "ClassifyManyError",
    "GalaxyJob",
    "classify_galaxy",
    "classify_many",
    "is_done",
    "output_paths",
    "read_manifest",
    "run_manifest",
]

#: Options of `ClusterClassifier.classify` that may go in ``classify_kwargs``;
#: positions options are per galaxy (`GalaxyJob`), progress is per run.
CLASSIFY_OPTIONS = ("tta", "aggregate", "column_style", "prefix", "tag", "batch_size")

MANIFEST_REQUIRED = ("galaxy", "catalog", "images_dir")
MANIFEST_OPTIONAL = ("origin",)

CATALOG_SUFFIX = "_classified.fits"
REGIONS_SUFFIX = "_classes.reg"
DONE_SUFFIX = "_done.json"

# Classifiers loaded by this process when it runs Dask tasks. Two entries
# let two runs with different models share a cluster without reloading on
# every task, while bounding the (possibly GPU) memory held between runs.
_WORKER_CACHE_SIZE = 2
_worker_models = collections.OrderedDict()
_worker_lock = threading.Lock()
_worker_loads = 0


class ClassifyManyError(ValueError):
    """Some galaxies of a `classify_many` run failed; the others were classified.

    A `ValueError` so that the command line reports it as bad input (exit
    status 2) in one line.

    Attributes
    ----------
    results : dict
        Galaxy name -> classified `~astropy.table.QTable` of the galaxies
        that succeeded (their outputs were written).
    errors : dict
        Galaxy name -> the exception that stopped that galaxy.
    """

    def __init__(self, results, errors):
        self.results = dict(results)
        self.errors = dict(errors)
        n = len(self.results) + len(self.errors)
        details = "; ".join(f"{name} ({_describe(exc)})" for name, exc in self.errors.items())
        super().__init__(
            f"{len(self.errors)} of {n} galaxies failed, the other "
            f"{len(self.results)} were classified: {details}"
        )


def _describe(exc):
    """``"FileNotFoundError: first line of the message"``."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    first = " ".join(str(text).split())
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclasses.dataclass
class GalaxyJob:
    """One galaxy to classify: its candidates, its images and where to write.

    Parameters
    ----------
    name : str
        Galaxy name; unique within a run, and used in output file names
        (``<name>_classified.fits``, ``<name>_classes.reg``), so it must
        not contain a path separator.
    catalog : str, `~pathlib.Path`, `~astropy.table.Table` or other source
        A catalogue file (anything `~photutils_clusterclf.catalogs.read_catalog`
        reads), a DS9 ``.reg`` file, or any in-memory source accepted by
        `ClusterClassifier.classify`. Files are read where the galaxy is
        processed (on the worker with Dask).
    images : str, `~pathlib.Path`, mapping or `MultiBandImage`
        A directory of PHANGS-named mosaics, a mapping band -> FITS file,
        or opened images. With Dask, opened images are sent as the paths
        of their files (images built from in-memory arrays cannot be).
    out : str or `~pathlib.Path`, optional
        Output catalogue; default ``<out_dir>/<name>_classified.fits``.
    origin : {0, 1}, optional
        Pixel convention of the catalogue's pixel columns, when it cannot
        be inferred (see `~photutils_clusterclf.positions.resolve_positions`).
    use : {"auto", "pixel", "sky"}, optional
        Which positions to use when the catalogue has both.
    reference_band : str, optional
        Reference band of images read from files.
    """

    name: str
    catalog: object
    images: object
    out: object = None
    origin: object = None
    use: str = "auto"
    reference_band: object = None

    def __post_init__(self):
        name = str(self.name)
        if not name.strip() or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(
                f"galaxy name {self.name!r} cannot be used in file names: "
                "use a non-empty name without '/', '\\' or a leading '.'"
            )
        self.name = name


def output_paths(job, out_dir=None, *, regions=True):
    """Output catalogue and DS9 file of a job (each None when not written).

    The catalogue is ``job.out`` or ``<out_dir>/<name>_classified.fits``;
    the region file ``<name>_classes.reg`` sits next to it.

    Returns
    -------
    catalog, regions : `~pathlib.Path` or None
    """
    if job.out is not None:
        catalog = Path(job.out)
    elif out_dir is not None:
        catalog = Path(out_dir) / f"{job.name}{CATALOG_SUFFIX}"
    else:
        return None, None
    return catalog, (catalog.with_name(f"{job.name}{REGIONS_SUFFIX}") if regions else None)


def classify_galaxy(
    job,
    classifier,
    *,
    out_dir=None,
    overwrite=False,
    regions=True,
    classify_kwargs=None,
):
    """Classify one galaxy and write its outputs; the unit of work of `classify_many`.

    Parameters
    ----------
    job : `GalaxyJob`
        The galaxy.
    classifier : `~photutils_clusterclf.classifier.ClusterClassifier`
        The model.
    out_dir : str or `~pathlib.Path`, optional
        Where outputs go (see `output_paths`); nothing is written when
        neither ``out_dir`` nor ``job.out`` is given.
    overwrite : bool, optional
        Replace existing outputs.
    regions : bool, optional
        Also write the DS9 region file; both files are renamed into place
        only once both are complete (`~photutils_clusterclf.pipeline.write_classified`).
    classify_kwargs : dict, optional
        Options of `ClusterClassifier.classify` (see `CLASSIFY_OPTIONS`).

    Returns
    -------
    table : `~astropy.table.QTable`
        The classified catalogue.
    """
    catalog_path, regions_path = output_paths(job, out_dir, regions=regions)
    classify_kwargs = dict(classify_kwargs or {})
    table = classify_files(
        classifier,
        job.catalog,
        job.images,
        catalog_path,
        regions=regions_path,
        overwrite=overwrite,
        reference_band=job.reference_band,
        progress_bar=False,
        origin=job.origin,
        use=job.use,
        **classify_kwargs,
    )
    if catalog_path is not None:
        _write_done(job, catalog_path, regions_path, classifier.sha256, classify_kwargs)
    return table


def _done_path(job, catalog_path):
    return catalog_path.with_name(f"{job.name}{DONE_SUFFIX}")


def _done_record(job, catalog_path, regions_path, model_sha256, classify_kwargs):
    files = [p for p in (catalog_path, regions_path) if p is not None]
    return {
        "galaxy": job.name,
        "model_sha256": model_sha256,
        "classify_options": dict(sorted(classify_kwargs.items())),
        "origin": job.origin,
        "use": job.use,
        "files": {p.name: sha256_file(p) for p in files},
    }


def _write_done(job, catalog_path, regions_path, model_sha256, classify_kwargs):
    """The completion record, written once both outputs are in place."""
    record = _done_record(job, catalog_path, regions_path, model_sha256, classify_kwargs)
    with atomic_output(_done_path(job, catalog_path), overwrite=True) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def is_done(job, out_dir=None, *, model_sha256, regions=True, classify_kwargs=None):
    """Whether a galaxy's outputs are complete and unchanged since a run with these settings.

    True when the completion record of the job exists, names the same
    model SHA-256, options and positions settings, and every output file
    it lists is on disk with the SHA-256 it recorded.
    """
    catalog_path, regions_path = output_paths(job, out_dir, regions=regions)
    if catalog_path is None:
        return False
    try:
        recorded = json.loads(_done_path(job, catalog_path).read_text())
    except (OSError, ValueError):
        return False
    files = [p for p in (catalog_path, regions_path) if p is not None]
    if not all(p.is_file() for p in files):
        return False
    expected = _done_record(
        job, catalog_path, regions_path, model_sha256, dict(classify_kwargs or {})
    )
    return recorded == expected


def _worker_classifier(path, sha256, device):
    """This process's classifier for (path, sha256, device), loaded at most once."""
    global _worker_loads
    key = (str(path), sha256, str(device))
    # The lock makes concurrent tasks of a multi-threaded worker wait for one
    # load instead of each loading the model.
    with _worker_lock:
        classifier = _worker_models.get(key)
        if classifier is None:
            classifier = ClusterClassifier.load(path, device=device, sha256=sha256)
            _worker_loads += 1
            _worker_models[key] = classifier
            while len(_worker_models) > _WORKER_CACHE_SIZE:
                _worker_models.popitem(last=False)
        else:
            _worker_models.move_to_end(key)
    return classifier


def _worker_model_loads():
    """How many times this process has loaded a model for Dask tasks."""
    return _worker_loads


def _dask_task(job, model, sha256, device, options):
    """One galaxy on a Dask worker, with the worker's cached classifier."""
    return classify_galaxy(job, _worker_classifier(model, sha256, device), **options)


def _absolute(path):
    return Path(path).absolute()


def _portable(job):
    """A copy of ``job`` that holds file paths only, absolute, for a remote worker."""
    images, reference = job.images, job.reference_band
    if isinstance(images, MultiBandImage):
        sources = {band: images.source(band) for band in images.bands}
        missing = [band for band, path in sources.items() if path is None]
        if missing:
            raise TypeError(
                f"galaxy {job.name}: bands {missing} are in-memory arrays, which "
                "cannot be sent to Dask workers; give the images as a directory "
                "or a mapping band -> FITS file"
            )
        images, reference = sources, reference or images.reference_band
    if isinstance(images, Mapping):
        images = {band: _absolute(path) for band, path in images.items()}
    elif isinstance(images, (str, Path)):
        images = _absolute(images)
    catalog = _absolute(job.catalog) if isinstance(job.catalog, (str, Path)) else job.catalog
    out = None if job.out is None else _absolute(job.out)
    return dataclasses.replace(
        job, images=images, catalog=catalog, out=out, reference_band=reference
    )


def _check_jobs(jobs, classify_kwargs):
    """Validate the jobs and options before any galaxy is processed."""
    if not all(isinstance(job, GalaxyJob) for job in jobs):
        raise TypeError("jobs must be GalaxyJob objects (see read_manifest for a CSV manifest)")
    if not jobs:
        raise ValueError("no galaxies to classify")
    seen = collections.Counter(job.name for job in jobs)
    duplicates = sorted(name for name, count in seen.items() if count > 1)
    if duplicates:
        raise ValueError(f"galaxy names must be unique; repeated: {', '.join(duplicates)}")
    unknown = sorted(set(classify_kwargs) - set(CLASSIFY_OPTIONS))
    if unknown:
        raise TypeError(
            f"classify_kwargs {unknown} are not accepted; accepted: "
            f"{', '.join(CLASSIFY_OPTIONS)} (origin and use are set per GalaxyJob)"
        )


def _check_outputs(jobs, out_dir, overwrite, regions):
    """The outputs of the jobs to run: distinct, and writable (before any work)."""
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    outputs = [
        p for job in jobs for p in output_paths(job, out_dir, regions=regions) if p is not None
    ]
    clashes = sorted(
        {str(p) for p, n in collections.Counter(_absolute(p) for p in outputs).items() if n > 1}
    )
    if clashes:
        raise ValueError(
            f"several galaxies would write {', '.join(clashes)}; give each job its own out path"
        )
    for path in outputs:
        check_writable(path, overwrite=overwrite)


def classify_many(
    jobs,
    model,
    *,
    client=None,
    out_dir=None,
    overwrite=False,
    regions=True,
    classify_kwargs=None,
    device="auto",
    progress_bar=False,
):
    """Classify the candidates of many galaxies, serially or on a Dask cluster.

    Parameters
    ----------
    jobs : list of `GalaxyJob`
        The galaxies (see `read_manifest` for a CSV manifest).
    model : str or `~pathlib.Path`
        Checkpoint file. It is loaded once for a serial run, and once per
        worker process with Dask (cached there across runs); every worker
        checks that its file has the SHA-256 the client computed.
    client : `distributed.Client`, optional
        Run one task per galaxy on this cluster. Without it, galaxies are
        processed one after the other in this process. Workers must see
        the model, catalogue and image files under the same paths (relative
        paths are made absolute here).
    out_dir : str or `~pathlib.Path`, optional
        Directory (created if missing) for ``<name>_classified.fits`` and
        ``<name>_classes.reg``. With neither ``out_dir`` nor ``GalaxyJob.out``
        nothing is written and the tables are only returned.
    overwrite : bool, optional
        Replace existing outputs and redo every galaxy. Without it, galaxies
        whose outputs are complete and unchanged since a run with the same
        model and options (`is_done`) are skipped and read back; the outputs
        of the others are checked before any work starts and an existing
        one raises `FileExistsError`.
    regions : bool, optional
        Also write a DS9 region file per galaxy.
    classify_kwargs : dict, optional
        Options passed to `ClusterClassifier.classify`: ``tta``,
        ``aggregate``, ``column_style``, ``prefix``, ``tag``, ``batch_size``.
    device : str, optional
        ``"auto"`` (CUDA when available, else CPU; decided on each worker),
        ``"cpu"``, ``"cuda"``.
    progress_bar : bool, optional
        Show a progress bar over galaxies.

    Returns
    -------
    results : dict
        Galaxy name -> classified `~astropy.table.QTable`, in job order.

    Raises
    ------
    ClassifyManyError
        At the end of the run, if some galaxies failed; it holds the tables
        of the others (whose outputs were written) and the errors.
    FileExistsError, FileNotFoundError, ValueError, TypeError
        Bad arguments or model, before any galaxy is processed.
    """
    jobs = list(jobs)
    classify_kwargs = dict(classify_kwargs or {})
    _check_jobs(jobs, classify_kwargs)
    model = _absolute(model)
    if not model.is_file():
        raise FileNotFoundError(f"checkpoint file {model} does not exist")
    sha256 = sha256_file(model)
    done = (
        set()
        if overwrite
        else {
            job.name
            for job in jobs
            if is_done(
                job, out_dir, model_sha256=sha256, regions=regions, classify_kwargs=classify_kwargs
            )
        }
    )
    todo = [job for job in jobs if job.name not in done]
    _check_outputs(todo, out_dir, overwrite, regions)
    options = {
        "out_dir": None if out_dir is None else _absolute(out_dir),
        "overwrite": overwrite,
        "regions": regions,
        "classify_kwargs": classify_kwargs,
    }
    outcomes = {}
    if todo and client is None:
        outcomes = _run_serial(todo, model, sha256, device, options, progress_bar)
    elif todo:
        outcomes = _run_dask(client, todo, model, sha256, device, options, progress_bar)
    for job in jobs:
        if job.name in done:  # verified by checksum: read back, not redone
            outcomes[job.name] = QTable.read(output_paths(job, out_dir)[0])
    results = {
        job.name: outcomes[job.name]
        for job in jobs
        if not isinstance(outcomes[job.name], Exception)
    }
    errors = {
        job.name: outcomes[job.name] for job in jobs if isinstance(outcomes[job.name], Exception)
    }
    if errors:
        raise ClassifyManyError(results, errors) from next(iter(errors.values()))
    return results


def _run_serial(jobs, model, sha256, device, options, progress_bar):
    classifier = ClusterClassifier.load(model, device=device, sha256=sha256)
    outcomes = {}
    for job in add_progress_bar(jobs, desc="galaxies", unit="galaxy", enabled=progress_bar):
        try:
            outcomes[job.name] = classify_galaxy(job, classifier, **options)
        except Exception as exc:  # noqa: BLE001 - one bad galaxy must not lose the others
            outcomes[job.name] = exc
    return outcomes


def _run_dask(client, jobs, model, sha256, device, options, progress_bar):
    from distributed import as_completed

    # Validate the checkpoint here once, rather than failing every task alike;
    # every worker checks that its file has the SHA-256 computed here.
    load_checkpoint(model, sha256=sha256)
    portable = [_portable(job) for job in jobs]
    run = uuid.uuid4().hex[:8]  # keys unique across runs sharing a scheduler
    futures = {
        client.submit(
            _dask_task,
            job,
            model,
            sha256,
            device,
            options,
            key=f"clusterclf-{run}-{job.name}",
        ): job.name
        for job in portable
    }
    outcomes = {}
    try:
        for future in add_progress_bar(
            as_completed(futures),
            total=len(futures),
            enabled=progress_bar,
            unit="galaxy",
            desc="galaxies",
        ):
            try:
                outcomes[futures[future]] = future.result()
            except Exception as exc:  # noqa: BLE001 - task errors, lost workers: per galaxy
                outcomes[futures[future]] = exc
    finally:
        # On interruption, do not leave tasks running on a shared cluster.
        client.cancel([f for f in futures if not f.done()])
    return outcomes


def read_manifest(path):
    """Read a CSV manifest of galaxies into `GalaxyJob` objects.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        CSV file with a header and the columns ``galaxy``, ``catalog``,
        ``images_dir`` and optionally ``origin`` (0, 1 or empty). Relative
        paths are relative to the manifest's directory.

    Returns
    -------
    jobs : list of `GalaxyJob`

    Raises
    ------
    FileNotFoundError
        The manifest, or a catalogue or image directory it names, does not
        exist (all missing files are listed).
    ValueError
        Missing or unknown columns, empty fields, a bad origin, duplicate
        galaxy names, or no galaxies.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest file {path} does not exist")
    accepted = f"columns {', '.join(MANIFEST_REQUIRED)} (optional: {', '.join(MANIFEST_OPTIONAL)})"
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, skipinitialspace=True)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in MANIFEST_REQUIRED if c not in header]
        if missing:
            raise ValueError(f"manifest {path} lacks {', '.join(missing)}; it needs {accepted}")
        unknown = [c for c in header if c not in MANIFEST_REQUIRED + MANIFEST_OPTIONAL]
        if unknown:
            raise ValueError(
                f"manifest {path} has unknown columns {', '.join(unknown)}; accepted: {accepted}"
            )
        reader.fieldnames = header
        rows = []
        for row in reader:
            if None in row:  # DictReader's key for fields beyond the header
                raise ValueError(
                    f"manifest {path} line {reader.line_num} has more fields "
                    f"than the header; it needs {accepted}"
                )
            if any((v or "").strip() for v in row.values()):
                rows.append((reader.line_num, row))
    if not rows:
        raise ValueError(f"manifest {path} lists no galaxies")
    jobs, absent = [], []
    for line, row in rows:
        row = {k: (v or "").strip() for k, v in row.items()}
        empty = [c for c in MANIFEST_REQUIRED if not row.get(c)]
        if empty:
            raise ValueError(f"manifest {path} line {line}: empty {', '.join(empty)}")
        origin = row.get("origin") or None
        if origin is not None:
            if origin not in ("0", "1"):
                raise ValueError(
                    f"manifest {path} line {line}: origin {origin!r} must be 0, 1 or empty"
                )
            origin = int(origin)
        catalog = path.parent / row["catalog"]
        images = path.parent / row["images_dir"]
        absent += [
            str(p) for p, ok in ((catalog, catalog.is_file()), (images, images.is_dir())) if not ok
        ]
        jobs.append(GalaxyJob(name=row["galaxy"], catalog=catalog, images=images, origin=origin))
    if absent:
        raise FileNotFoundError(
            f"manifest {path} names files or directories that do not exist: {', '.join(absent)}"
        )
    names = collections.Counter(job.name for job in jobs)
    duplicates = sorted(name for name, count in names.items() if count > 1)
    if duplicates:
        raise ValueError(f"manifest {path} repeats galaxies: {', '.join(duplicates)}")
    return jobs


def run_manifest(
    manifest,
    *,
    model,
    out_dir,
    scheduler=None,
    overwrite=False,
    device="auto",
    progress_bar=False,
):
    """Classify the galaxies of a CSV manifest (``clusterclf classify-many``).

    Parameters
    ----------
    manifest : str or `~pathlib.Path`
        See `read_manifest`.
    model : str or `~pathlib.Path`
        Checkpoint file.
    out_dir : str or `~pathlib.Path`
        Output directory (created if missing).
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); serial without.
    overwrite : bool, optional
        Replace existing outputs.
    device : str, optional
        Device on which the networks run.
    progress_bar : bool, optional
        Show a progress bar over galaxies.

    Returns
    -------
    results : dict
        Galaxy name -> classified table.

    Raises
    ------
    ClassifyManyError
        Some galaxies failed (the message names them); the others were
        written.
    """
    jobs = read_manifest(manifest)
    sha256 = sha256_file(model) if Path(model).is_file() else None
    n_done = (
        sum(is_done(job, out_dir, model_sha256=sha256) for job in jobs)
        if sha256 and not overwrite
        else 0
    )
    with contextlib.ExitStack() as stack:
        client = None
        if scheduler is not None:
            from distributed import Client

            client = stack.enter_context(Client(scheduler))
        results = classify_many(
            jobs,
            model,
            client=client,
            out_dir=out_dir,
            overwrite=overwrite,
            device=device,
            progress_bar=progress_bar,
        )
    if n_done:
        print(
            f"{len(results) - n_done} galaxies classified, {n_done} already done "
            f"(outputs verified by checksum, skipped); outputs in {out_dir}"
        )
    else:
        print(f"classified {len(results)} galaxies; wrote {out_dir}")
    return results
