"""The ``clusterclf`` command.

Every sub-command reports bad input as one line on stderr and exit status 2,
checks that its outputs may be written before doing any work, and writes
them atomically (temporary file, then rename).
"""

import argparse
import contextlib
import os
import sys
from pathlib import Path

from ._meta import __bibtex__, __version__
from ._threads import apply_num_threads, parse_num_threads

__all__ = ["main"]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line, not a usage block."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _num_threads(text):
    """``--num-threads`` value: a positive integer or ``auto`` (None)."""
    try:
        return parse_num_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number_or_auto(text):
    """``--backbone-lr-factor`` value: ``auto`` or a number (its range is checked by TrainingOptions)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _band_files(pairs):
    """``["F275W=a.fits", ...]`` -> ``{"F275W": "a.fits", ...}``."""
    files = {}
    for pair in pairs:
        band, sep, path = pair.partition("=")
        if not sep or not band or not path:
            raise ValueError(f"--images entry {pair!r} is not BAND=FILE (e.g. F555W=f555w.fits)")
        if band.upper() in files:
            raise ValueError(f"band {band} is given twice in --images")
        files[band.upper()] = path
    return files


def _check_outputs(args, *options):
    """Outputs of ``--option`` names: known format, directory exists, no clobbering."""
    from .fileio import table_format

    for option in options:
        path = getattr(args, option.lstrip("-").replace("-", "_"))
        if path is None:
            continue
        if option == "--out" and args.command == "classify":
            try:
                table_format(path)
            except ValueError as exc:
                raise ValueError(f"--out {path}: {str(exc).split(': ', 1)[1]}") from None
        path = Path(path)
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"{option} {path} already exists; add --overwrite to replace it")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{option} {path}: directory {path.parent} does not exist")


def _check_inputs(args):
    """The classify inputs exist, checked before torch is imported or a model loaded."""
    if bool(args.images) == bool(args.images_dir):
        raise ValueError("give the images either as --images BAND=FILE ... or as --images-dir DIR")
    for option, path in (("--model", args.model), ("--catalog", args.catalog)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{option} {path} does not exist or is not a file")
    if args.images_dir and not Path(args.images_dir).is_dir():
        raise FileNotFoundError(
            f"--images-dir {args.images_dir} does not exist or is not a "
            "directory (give the directory of the band FITS files, or "
            "--images BAND=FILE ...)"
        )
    files = _band_files(args.images) if args.images else {}
    missing = [f"{band}={path}" for band, path in files.items() if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"--images: no such file {', '.join(missing)}")
    return files or args.images_dir


def _cmd_classify(args):
    images = _check_inputs(args)
    _check_outputs(args, "--out", "--regions")
    from .pipeline import classify_files

    table = classify_files(
        args.model,
        args.catalog,
        images,
        args.out,
        regions=args.regions,
        overwrite=args.overwrite,
        require_overlap=True,
        sha256=args.sha256,
        device=args.device,
        check_bands=not args.ignore_band_headers,
        progress_bar=not args.quiet,
        origin=args.origin,
        use=args.use,
        columns=_columns(args.columns),
        tta=args.tta,
        aggregate=args.aggregate,
        column_style=args.column_style,
        batch_size=args.batch_size,
    )
    n_ok = table.meta["clusterclf"]["n_classified"]
    written = [str(p) for p in (args.out, args.regions) if p]
    print(f"classified {n_ok} of {len(table)} candidates; wrote {', '.join(written)}")


def _columns(names):
    """``--columns X Y`` (or one SkyCoord column) -> the ``columns`` argument."""
    if names is None:
        return None
    if len(names) > 2:
        raise ValueError(
            f"--columns takes two names (X Y or RA DEC) or one SkyCoord column, not {len(names)}"
        )
    return names[0] if len(names) == 1 else tuple(names)


def _cmd_regions(args):
    import astropy.units as u

    from .catalogs import read_catalog
    from .fileio import check_writable
    from .images import MultiBandImage
    from .regions_io import write_class_regions

    if args.radius is not None and args.radius_arcsec is not None:
        raise ValueError(
            "give the circle radius either as --radius (pixels) or as --radius-arcsec, not both"
        )
    if args.images and args.images_dir:
        raise ValueError("give the images either as --images BAND=FILE ... or as --images-dir DIR")
    check_writable(args.out, overwrite=args.overwrite)
    images = _band_files(args.images) if args.images else args.images_dir
    radius = (
        args.radius_arcsec * u.arcsec
        if args.radius_arcsec is not None
        else (args.radius if args.radius is not None else 5.0)
    )
    table = read_catalog(args.catalog)
    with contextlib.ExitStack() as stack:
        wcs = stack.enter_context(MultiBandImage.from_fits(images)) if images else None
        try:
            write_class_regions(
                table,
                args.out,
                column=args.column,
                frame=args.frame,
                radius=radius,
                wcs=wcs,
                origin=args.origin,
                overwrite=args.overwrite,
            )
        except ValueError as exc:
            if wcs is None and "wcs=" in str(exc):
                raise ValueError(
                    f"{exc} -- on the command line: give the images "
                    "(--images-dir or --images) for their WCS, or a sky radius "
                    "with --radius-arcsec when the catalogue has RA/Dec "
                    "columns"
                ) from None
            raise
    print(f"wrote {args.out}")


def _cmd_evaluate(args):
    from .catalogs import read_catalog
    from .evaluation import EvaluationReport
    from .fileio import check_writable
    from .visualization import save_confusion_matrix, save_reliability_diagram

    for path in (args.plot, args.json, args.reliability_plot):
        if path:
            check_writable(path, overwrite=args.overwrite)
    table = read_catalog(args.catalog)
    prob_columns = (
        args.prob_columns if args.prob_columns in ("auto", "none") else args.prob_columns.split(",")
    )
    report = EvaluationReport.from_table(
        table,
        args.truth_column,
        args.pred_column,
        prob_columns=None if prob_columns == "none" else prob_columns,
    )
    if args.reliability_plot and not report.has_probabilities:
        raise ValueError(
            f"--reliability-plot needs the probability columns of "
            f"{args.pred_column}; none found: pass --prob-columns P1,P2,P3,P4"
        )
    print(report)
    if args.json:
        report.write_json(args.json, overwrite=args.overwrite)
    if args.plot:
        save_confusion_matrix(report, args.plot, overwrite=args.overwrite)
    if args.reliability_plot:
        save_reliability_diagram(report, args.reliability_plot, overwrite=args.overwrite)


def _cmd_consensus(args):
    from .catalogs import read_catalog
    from .consensus import consensus_labels
    from .fileio import check_writable, write_table

    check_writable(args.out, overwrite=args.overwrite)
    table = consensus_labels(
        read_catalog(args.catalog), columns=args.columns, method=args.method, ties=args.ties
    )
    n = int((table["consensus_class"] > 0).sum())
    write_table(table, args.out, overwrite=args.overwrite)
    print(
        f"{args.method} consensus of {', '.join(args.columns)}: {n} of {len(table)} "
        f"candidates have a class; wrote {args.out}"
    )


def _cmd_simulate(args):
    from .datasets import simulate_field

    out = Path(args.out)
    field = simulate_field(
        shape=tuple(args.shape),
        n_candidates=args.n_candidates,
        distance_mpc=args.distance_mpc,
        seed=args.seed,
        target=args.target,
        label_noise=None if args.label_noise == "none" else args.label_noise,
    )
    # Created only now, so that bad options or an interrupted simulation
    # leave nothing behind.
    out.mkdir(parents=True, exist_ok=True)
    paths = field.write(out, overwrite=args.overwrite)
    print(f"wrote {len(paths)} files to {out}")


def _parse_galaxy(spec):
    catalog, sep, images = spec.partition("=")
    if not sep or not catalog or not images:
        raise ValueError(f"--galaxy {spec!r} is not CATALOG=IMAGES_DIR")
    return catalog, images


def _cmd_train(args):
    from .catalogs import read_catalog
    from .fileio import check_writable
    from .images import MultiBandImage
    from .training import TrainingOptions, TrainingSet, train_classifier

    check_writable(args.out, overwrite=args.overwrite)
    # Options left out on the command line keep TrainingOptions' defaults;
    # they are checked before any data is read.
    options = {
        name: getattr(args, name) for name in _TRAIN_OPTIONS if getattr(args, name) is not None
    }
    if options.get("weights") == "none":
        options["weights"] = None
    if "label_noise" in options:
        options["label_noise"] = _read_label_noise(options["label_noise"])
    options = TrainingOptions(**options)
    specs = [_parse_galaxy(spec) for spec in args.galaxy]
    with contextlib.ExitStack() as stack:
        galaxies = [
            (
                read_catalog(catalog),
                stack.enter_context(
                    MultiBandImage.from_fits(images_dir, check_bands=not args.ignore_band_headers)
                ),
                Path(catalog).stem,
            )
            for catalog, images_dir in specs
        ]
        training_set = TrainingSet.from_galaxies(
            galaxies,
            label_column=args.label_column,
            cutout_size=args.cutout_size,
            origin=args.origin,
            progress_bar=not args.quiet,
        )
    clf = train_classifier(
        training_set,
        options,
        device=args.device,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress_bar=not args.quiet,
    )
    # Under torchrun every rank ends with the same weights; one writes them.
    if int(os.environ.get("RANK", "0")) == 0:
        sha = clf.save(args.out, overwrite=args.overwrite)
        start = clf.card.training["options"]["weights"] or "random weights"
        print(f"wrote {args.out} (sha256 {sha}; started from {start})")


#: clusterclf train options passed to train_classifier when given.
_TRAIN_OPTIONS = (
    "arch",
    "weights",
    "input_size",
    "epochs",
    "n_models",
    "seed",
    "normalization",
    "stem",
    "head",
    "schedule",
    "label_smoothing",
    "label_noise",
    "lr",
    "freeze_backbone_epochs",
    "backbone_lr_factor",
)


def _train_defaults():
    """TrainingOptions' defaults, shown in --help without repeating them here."""
    import dataclasses

    from .training.options import TrainingOptions

    fields = {f.name: f.default for f in dataclasses.fields(TrainingOptions)}
    return {name: fields[name] for name in _TRAIN_OPTIONS}


def _pretrain_defaults():
    """pretrain's defaults, shown in --help without repeating them here."""
    import inspect

    from .training.pretraining import pretrain

    return {k: v.default for k, v in inspect.signature(pretrain).parameters.items()}


def _cmd_pretrain(args):
    from .training.pretraining import pretrain

    options = {
        k: getattr(args, k)
        for k in ("arch", "n_fields", "n_candidates", "epochs", "seed")
        if getattr(args, k) is not None
    }
    if args.name is not None:
        from .weights import get_weights

        options = get_weights(args.name).recipe | options
    path, sha = pretrain(
        args.out,
        name=args.name,
        device=args.device,
        work_dir=args.work_dir,
        keep_work_dir=args.keep_work_dir,
        overwrite=args.overwrite,
        progress_bar=not args.quiet,
        **options,
    )
    print(f"wrote {path} (sha256 {sha})")


def _cmd_demo(args):
    from .demo import run_demo

    run_demo(
        out_dir=args.out,
        quick=args.quick,
        retrain=args.retrain,
        device=args.device,
        progress_bar=not args.quiet,
    )


def _cmd_classify_many(args):
    from .many import run_manifest

    run_manifest(
        args.manifest,
        model=args.model,
        out_dir=args.out_dir,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        device=args.device,
        progress_bar=not args.quiet,
    )


def _cmd_inspect(args):
    from .catalogs import read_catalog
    from .images import MultiBandImage
    from .inspect_page import write_inspection_page

    _check_outputs(args, "--out")
    table = read_catalog(args.catalog)
    with MultiBandImage.from_fits(args.images_dir) as images:
        n = write_inspection_page(
            table,
            images,
            args.out,
            column=args.column,
            order=args.order,
            max_rows=args.max,
            cutout_size=args.cutout_size,
            id_column=args.id_column,
            origin=args.origin,
            overwrite=args.overwrite,
            progress_bar=not args.quiet,
        )
    print(f"wrote {args.out} ({n} candidates)")


def _add_images_options(p, *, required=True):
    extra = "" if required else " (their WCS converts between pixels and the sky)"
    p.add_argument(
        "--images",
        nargs="+",
        metavar="BAND=FILE",
        default=None,
        help=f"one FITS file per band, e.g. F555W=ngc628_f555w.fits{extra}",
    )
    p.add_argument(
        "--images-dir",
        metavar="DIR",
        default=None,
        help="directory of PHANGS-named band files "
        "(hlsp_phangs-hst_hst_<instr>_<target>_<filter>_v1_exp-drc-sci.fits)",
    )


def _add_band_header_option(p):
    p.add_argument(
        "--ignore-band-headers",
        action="store_true",
        help="trust the band names given even where a file's FILTER keyword "
        "or PHANGS name says another band",
    )


def _common(p, *, device=True):
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if device:
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument(
        "--num-threads",
        type=_num_threads,
        default=None,
        metavar="N",
        help="CPU threads for torch (default auto: the CPUs not busy with "
        "other processes; see the performance docs)",
    )


def _add_demo(sub):
    p = sub.add_parser("demo", help="simulate galaxies, train, classify a held-out galaxy")
    p.add_argument(
        "--out", default="clusterclf-demo", help="output directory (default ./clusterclf-demo)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: smaller fields, the small network small_cnn (<= 3 min on an idle 2-core CPU)",
    )
    p.add_argument("--retrain", action="store_true", help="retrain even if a model exists")
    _common(p)
    p.set_defaults(func=_cmd_demo)


def _add_simulate(sub):
    p = sub.add_parser("simulate", help="write a simulated PHANGS-like field")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--target", default="sim-galaxy", help="target name used in file names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-candidates", type=int, default=300)
    p.add_argument("--distance-mpc", type=float, default=10.0)
    p.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), default=(1000, 1000))
    p.add_argument("--label-noise", choices=("none", "human"), default="none")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_simulate)


def _read_label_noise(value):
    """``--label-noise``: a name (``human``, ``none``) or a text file of 4 rows of 4 numbers."""
    import numpy as np

    if value.lower() in ("human", "none"):
        return value
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(
            f"--label-noise {value}: no such file; give 'human', 'none' or a text "
            "file of 4 rows of 4 probabilities P(label | true class)"
        )
    try:
        return np.loadtxt(path, ndmin=2).tolist()
    except ValueError as exc:
        raise ValueError(f"--label-noise {value}: not a table of numbers ({exc})") from None


def _add_train(sub):
    p = sub.add_parser("train", help="train a classifier on labelled galaxies")
    p.add_argument(
        "--galaxy",
        action="append",
        required=True,
        metavar="CAT=IMAGES_DIR",
        help="a labelled catalogue and its directory of band files (repeatable)",
    )
    p.add_argument("--label-column", required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    defaults = _train_defaults()
    _add_network_options(p, defaults)
    _add_recipe_options(p, defaults)
    p.add_argument("--origin", type=int, choices=(0, 1), default=None)
    _add_band_header_option(p)
    p.add_argument("--checkpoint-dir", default=None, help="write a resumable state each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    p.add_argument("--overwrite", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_train)


def _add_network_options(p, defaults):
    """``train``'s options of the network and its input: architecture, weights, sizes."""
    from .cutouts import DEFAULT_CUTOUT_SIZE
    from .training.options import PRETRAINED_BACKBONE_LR_FACTOR

    p.add_argument(
        "--arch",
        help=f"network (default {defaults['arch']}; also resnet34, vgg11_bn, vgg19_bn, small_cnn)",
    )
    p.add_argument(
        "--weights",
        help="auto (the installed sim-<arch> weights of 'clusterclf pretrain', else "
        "cached ImageNet, else random), imagenet, none, a pretrained name (e.g. "
        "sim-resnet18), a clusterclf checkpoint to continue from, "
        f"or a .pth state dict (default {defaults['weights']})",
    )
    p.add_argument(
        "--freeze-backbone-epochs",
        type=int,
        help="train only the stem and head for this many epochs first "
        f"(default {defaults['freeze_backbone_epochs']})",
    )
    p.add_argument(
        "--backbone-lr-factor",
        type=_number_or_auto,
        help="backbone learning rate relative to --lr, in [0, 1] (default auto: "
        f"{PRETRAINED_BACKBONE_LR_FACTOR:g} when starting from pretrained weights, 1 from random ones)",
    )
    p.add_argument(
        "--cutout-size",
        type=int,
        default=DEFAULT_CUTOUT_SIZE,
        help=f"cutout side in pixels (default {DEFAULT_CUTOUT_SIZE})",
    )
    p.add_argument(
        "--input-size",
        type=int,
        help="network input side; cutouts are resized to it (default: cutout size)",
    )


def _add_recipe_options(p, defaults):
    """``train``'s options of the recipe: epochs, ensemble, seed, variants, schedule."""
    from .training.options import DEFAULT_LR, RECOMMENDED_LR, SCHEDULES

    p.add_argument("--epochs", type=int, help=f"at most this many (default {defaults['epochs']})")
    p.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default auto: "
        + "".join(f"{lr:g} for {arch}, " for arch, lr in RECOMMENDED_LR.items())
        + f"{DEFAULT_LR:g} otherwise)",
    )
    p.add_argument(
        "--n-models", type=int, help=f"ensemble members (default {defaults['n_models']})"
    )
    p.add_argument("--seed", type=int, help=f"random seed (default {defaults['seed']})")
    # The names are checked by TrainingOptions (before any data is read):
    # their lists live in modules that import torch, which --help must not.
    p.add_argument(
        "--normalization",
        metavar="{asinh_shared,asinh}",
        help=f"cutout normalisation (default {defaults['normalization']})",
    )
    p.add_argument(
        "--stem",
        metavar="{auto,standard,nopool,stride1}",
        help=f"network stem for small inputs (default {defaults['stem']}: "
        "per architecture, see the training docs)",
    )
    p.add_argument(
        "--head",
        metavar="{auto,standard,compact}",
        help=f"network head (default {defaults['head']})",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help=f"learning-rate schedule (default {defaults['schedule']})",
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        help=f"label smoothing in [0, 1) (default {defaults['label_smoothing']})",
    )
    p.add_argument(
        "--label-noise",
        metavar="{human,none,FILE}",
        help="how the labels were made from the true classes, for forward "
        "correction: 'human' (the package's human-classifier matrix) or a text "
        "file of 4 rows of 4 probabilities P(label | true class) (default none)",
    )


def _add_pretrain(sub):
    p = sub.add_parser(
        "pretrain",
        help="pretrain a network on simulated fields (named weights such as sim-resnet18)",
    )
    p.add_argument("--out", default=None, help="weights file to write (.pt)")
    p.add_argument(
        "--name",
        default=None,
        help="make a registered entry (its recipe) and install it in the cache",
    )
    pre = _pretrain_defaults()
    p.add_argument("--arch", help=f"network (default {pre['arch']})")
    p.add_argument("--n-fields", type=int, help=f"simulated fields (default {pre['n_fields']})")
    p.add_argument(
        "--n-candidates", type=int, help=f"candidates per field (default {pre['n_candidates']})"
    )
    p.add_argument("--epochs", type=int, help=f"at most this many (default {pre['epochs']})")
    p.add_argument("--seed", type=int, help=f"corpus and training seed (default {pre['seed']})")
    p.add_argument(
        "--work-dir",
        default=None,
        help="corpus and training checkpoints (default .<out>.pretrain); "
        "rerun the same command to resume",
    )
    p.add_argument("--keep-work-dir", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_pretrain)


def _add_classify(sub):
    p = sub.add_parser("classify", help="add machine classes to a candidate catalogue")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument(
        "--catalog",
        required=True,
        help="candidate catalogue (FITS, ECSV, CSV, LEGUS .tab) or DS9 .reg file",
    )
    _add_images_options(p)
    _add_band_header_option(p)
    p.add_argument("--out", required=True, help="output catalogue (.fits or .ecsv)")
    p.add_argument("--regions", default=None, help="also write a DS9 region file")
    p.add_argument(
        "--origin",
        type=int,
        choices=(0, 1),
        default=None,
        help="pixel convention of x/y columns (0 numpy/PHANGS, 1 FITS/LEGUS)",
    )
    p.add_argument("--use", choices=("auto", "pixel", "sky"), default="auto")
    p.add_argument(
        "--columns",
        nargs="+",
        metavar="NAME",
        default=None,
        help="position columns to use: X Y (pixel) or RA DEC (sky, with --use sky)",
    )
    p.add_argument("--column-style", choices=("default", "phangs"), default="default")
    p.add_argument("--aggregate", choices=("mean", "mode"), default="mean")
    p.add_argument("--tta", action="store_true", help="average over the 8 dihedral transforms")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the model file")
    p.add_argument("--overwrite", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_classify)


def _add_classify_many(sub):
    p = sub.add_parser("classify-many", help="classify many galaxies (serial or on Dask)")
    p.add_argument("--manifest", required=True, help="CSV with columns galaxy, catalog, images_dir")
    p.add_argument("--model", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address")
    p.add_argument("--overwrite", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_classify_many)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="confusion matrix and per-class recall of two columns")
    p.add_argument("--catalog", required=True)
    p.add_argument("--truth-column", required=True)
    p.add_argument("--pred-column", required=True)
    p.add_argument("--plot", default=None, help="confusion-matrix PNG")
    p.add_argument("--json", default=None, help="report as JSON")
    p.add_argument(
        "--prob-columns",
        default="auto",
        help="probability columns of classes 1-4 for ECE / Brier score: "
        "'auto' (those written with --pred-column, if present), 'none', "
        "or P1,P2,P3,P4",
    )
    p.add_argument(
        "--reliability-plot",
        default=None,
        help="reliability-diagram PNG (needs the probability columns)",
    )
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_evaluate)


def _add_consensus(sub):
    p = sub.add_parser("consensus", help="consensus class of several labellers' class columns")
    p.add_argument("--catalog", required=True, help="catalogue with the labellers' class columns")
    p.add_argument(
        "--columns",
        nargs="+",
        required=True,
        metavar="COLUMN",
        help="one class column per labeller, first = lead (breaks majority ties)",
    )
    p.add_argument("--method", choices=("majority", "dawid-skene"), default="majority")
    p.add_argument(
        "--ties",
        choices=("first", "none"),
        default="first",
        help="majority ties: first column's vote (default) or class 0",
    )
    p.add_argument("--out", required=True, help="output catalogue (.fits, .ecsv or .csv)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_consensus)


def _add_regions(sub):
    p = sub.add_parser("regions", help="DS9 region file of classified candidates")
    p.add_argument("--catalog", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--column", default="class_ml")
    p.add_argument(
        "--frame",
        choices=("pixel", "sky"),
        default="pixel",
        help="pixel (default) or sky (fk5/icrs) regions",
    )
    p.add_argument("--radius", type=float, default=None, help="circle radius in pixels (default 5)")
    p.add_argument(
        "--radius-arcsec",
        type=float,
        default=None,
        help="circle radius on the sky (for --frame sky without images)",
    )
    _add_images_options(p, required=False)
    p.add_argument("--origin", type=int, choices=(0, 1), default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_regions)


def _add_inspect(sub):
    from .cutouts import DEFAULT_CUTOUT_SIZE

    p = sub.add_parser(
        "inspect",
        help="HTML page to inspect classified candidates and label them with the keyboard",
    )
    p.add_argument("--catalog", required=True, help="classified catalogue")
    p.add_argument(
        "--images-dir", required=True, metavar="DIR", help="directory of PHANGS-named band files"
    )
    p.add_argument("--out", required=True, help="output HTML file")
    p.add_argument(
        "--order",
        choices=("uncertain", "class", "id"),
        default="uncertain",
        help="uncertain (lowest class probability) first (default), by class, or by id",
    )
    p.add_argument(
        "--max",
        type=int,
        default=None,
        metavar="N",
        help="only the first N candidates in that order",
    )
    p.add_argument("--column", default="class_ml", help="machine class column")
    p.add_argument("--id-column", default=None, help="id column (found automatically)")
    p.add_argument("--cutout-size", type=int, default=DEFAULT_CUTOUT_SIZE)
    p.add_argument("--origin", type=int, choices=(0, 1), default=None)
    p.add_argument("--overwrite", action="store_true")
    _common(p, device=False)
    p.set_defaults(func=_cmd_inspect)


def _build_parser():
    parser = _Parser(
        prog="clusterclf",
        description="Classify star-cluster candidates in multi-band HST images "
        "with transfer-learned CNNs (Wei et al. 2020).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--cite", action="store_true", help="print BibTeX for the method paper and this software"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_demo(sub)
    _add_simulate(sub)
    _add_train(sub)
    _add_pretrain(sub)
    _add_classify(sub)
    _add_classify_many(sub)
    _add_evaluate(sub)
    _add_consensus(sub)
    _add_regions(sub)
    _add_inspect(sub)
    return parser


def _message(exc):
    # KeyError's str() adds quotes; use the message itself.
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())


def main(argv=None):
    """Run the ``clusterclf`` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.cite:
        print(__bibtex__)
        return 0
    if not args.command:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        if hasattr(args, "num_threads"):
            apply_num_threads(args.num_threads)
        args.func(args)
    # Input that the package validated (bad values, missing files or bands,
    # outputs that exist). Anything else is a bug: it propagates, with its
    # traceback and exit status 1.
    except (ValueError, KeyError, OSError) as exc:
        print(f"clusterclf {args.command}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            f"clusterclf {args.command}: interrupted; no partial output was written",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
