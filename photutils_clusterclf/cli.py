"""The ``clusterclf`` command.

Every sub-command reports bad input as one line on stderr and exit status 2,
checks that its outputs may be written before doing any work, and writes
them atomically (temporary file, then rename).
"""

import argparse
import os
import sys
from pathlib import Path

from . import __bibtex__, __version__

__all__ = ["classify_files", "main"]

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line, not a usage block."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def classify_files(model, catalog, images, out, *, regions=None, overwrite=False,
                   sha256=None, device="auto", progress_bar=True, **classify_kwargs):
    """Classify a catalogue file with images on disk; write the catalogue (and DS9 file).

    This is what ``clusterclf classify`` does; the demo and scripts call it
    to go through exactly the same path.

    Parameters
    ----------
    model : str or `~pathlib.Path`
        Checkpoint file.
    catalog : str or `~pathlib.Path`
        Candidate catalogue (FITS, ECSV, CSV, LEGUS ``.tab``) or DS9 ``.reg`` file.
    images : str, `~pathlib.Path` or dict
        Directory of PHANGS-named band files, or a mapping band -> file.
    out : str or `~pathlib.Path`
        Output catalogue, ``.fits`` or ``.ecsv``.
    regions : str or `~pathlib.Path`, optional
        Also write a DS9 region file of the predicted classes; it and the
        catalogue are renamed into place only once both are complete.
    overwrite : bool, optional
        Replace existing outputs.
    sha256 : str, optional
        Expected SHA-256 of the model file.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    progress_bar : bool, optional
        Show a progress bar.
    **classify_kwargs
        Passed to `~photutils_clusterclf.ClusterClassifier.classify`.

    Returns
    -------
    table : `~astropy.table.QTable`
        The classified catalogue, as written.
    """
    from .catalogs import read_candidates
    from .classifier import ClusterClassifier
    from .fileio import check_writable, write_classified
    from .images import MultiBandImage
    check_writable(out, overwrite=overwrite)
    if regions:
        check_writable(regions, overwrite=overwrite)
    clf = ClusterClassifier.load(model, device=device, sha256=sha256)
    source = read_candidates(catalog)
    with MultiBandImage.from_fits(images) as opened:
        table = clf.classify(source, opened, progress_bar=progress_bar, **classify_kwargs)
    write_classified(table, out, regions or None, overwrite=overwrite,
                     **clf.region_options(source, **classify_kwargs))
    return table


def _cmd_classify(args):
    if bool(args.images) == bool(args.images_dir):
        raise ValueError("give the images either as --images BAND=FILE ... or as --images-dir DIR")
    table = classify_files(args.model, args.catalog,
                           _band_files(args.images) if args.images else args.images_dir,
                           args.out, regions=args.regions, overwrite=args.overwrite,
                           sha256=args.sha256, device=args.device,
                           progress_bar=not args.quiet, origin=args.origin, use=args.use,
                           tta=args.tta, aggregate=args.aggregate,
                           column_style=args.column_style, batch_size=args.batch_size)
    n_ok = table.meta["clusterclf"]["n_classified"]
    written = [str(p) for p in (args.out, args.regions) if p]
    print(f"classified {n_ok} of {len(table)} candidates; wrote {', '.join(written)}")


def _cmd_regions(args):
    from .catalogs import read_catalog
    from .regions_io import write_class_regions
    table = read_catalog(args.catalog)
    write_class_regions(table, args.out, column=args.column, frame=args.frame,
                        radius=args.radius, origin=args.origin, overwrite=args.overwrite)
    print(f"wrote {args.out}")


def _cmd_evaluate(args):
    from .catalogs import read_catalog
    from .evaluation import EvaluationReport
    from .fileio import check_writable
    from .visualization import save_confusion_matrix
    for path in (args.plot, args.json):
        if path:
            check_writable(path, overwrite=args.overwrite)
    table = read_catalog(args.catalog)
    report = EvaluationReport.from_table(table, args.truth_column, args.pred_column)
    print(report)
    if args.json:
        report.write_json(args.json, overwrite=args.overwrite)
    if args.plot:
        save_confusion_matrix(report, args.plot, overwrite=args.overwrite)


def _cmd_simulate(args):
    from .datasets import simulate_field
    out = Path(args.out)
    field = simulate_field(shape=tuple(args.shape), n_candidates=args.n_candidates,
                           distance_mpc=args.distance_mpc, seed=args.seed,
                           target=args.target,
                           label_noise=None if args.label_noise == "none" else args.label_noise)
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
    from .training import TrainingSet, train_classifier
    check_writable(args.out, overwrite=args.overwrite)
    galaxies = []
    for spec in args.galaxy:
        catalog, images_dir = _parse_galaxy(spec)
        galaxies.append((read_catalog(catalog), MultiBandImage.from_fits(images_dir),
                         Path(catalog).stem))
    training_set = TrainingSet.from_galaxies(galaxies, label_column=args.label_column,
                                             cutout_size=args.cutout_size,
                                             origin=args.origin,
                                             progress_bar=not args.quiet)
    # Options left out on the command line keep train_classifier's defaults.
    options = {name: getattr(args, name) for name in _TRAIN_OPTIONS
               if getattr(args, name) is not None}
    if options.get("weights") == "none":
        options["weights"] = None
    clf = train_classifier(training_set, device=args.device,
                           checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                           progress_bar=not args.quiet, **options)
    # Under torchrun every rank ends with the same weights; one writes them.
    if int(os.environ.get("RANK", "0")) == 0:
        sha = clf.save(args.out, overwrite=args.overwrite)
        print(f"wrote {args.out} (sha256 {sha})")


#: clusterclf train options passed to train_classifier when given.
_TRAIN_OPTIONS = ("arch", "weights", "input_size", "epochs", "n_models", "seed",
                  "freeze_backbone_epochs", "backbone_lr_factor")


def _train_defaults():
    """train_classifier's defaults, shown in --help without repeating them here."""
    import inspect

    from .training import train_classifier
    parameters = inspect.signature(train_classifier).parameters
    return {name: parameters[name].default for name in _TRAIN_OPTIONS}


def _pretrain_defaults():
    """pretrain's defaults, shown in --help without repeating them here."""
    import inspect

    from .pretraining import pretrain
    return {k: v.default for k, v in inspect.signature(pretrain).parameters.items()}


def _cmd_pretrain(args):
    from .pretraining import pretrain
    options = {k: getattr(args, k) for k in ("arch", "n_fields", "n_candidates", "epochs",
                                             "seed") if getattr(args, k) is not None}
    if args.name is not None:
        from .weights import get_weights
        options = get_weights(args.name).recipe | options
    path, sha = pretrain(args.out, name=args.name, device=args.device,
                         work_dir=args.work_dir, keep_work_dir=args.keep_work_dir,
                         overwrite=args.overwrite, progress_bar=not args.quiet, **options)
    print(f"wrote {path} (sha256 {sha})")


def _cmd_demo(args):
    from .demo import run_demo
    run_demo(out_dir=args.out, quick=args.quick, retrain=args.retrain, device=args.device,
             progress_bar=not args.quiet)


def _cmd_classify_many(args):
    from .distributed import run_manifest
    run_manifest(args.manifest, model=args.model, out_dir=args.out_dir,
                 scheduler=args.scheduler, overwrite=args.overwrite, device=args.device,
                 progress_bar=not args.quiet)


def _add_images_options(p):
    p.add_argument("--images", nargs="+", metavar="BAND=FILE", default=None,
                   help="one FITS file per band, e.g. F555W=ngc628_f555w.fits")
    p.add_argument("--images-dir", metavar="DIR", default=None,
                   help="directory of PHANGS-named band files "
                        "(hlsp_phangs-hst_hst_<instr>_<target>_<filter>_v1_exp-drc-sci.fits)")


def _build_parser():
    from .cutouts import DEFAULT_CUTOUT_SIZE
    parser = _Parser(prog="clusterclf",
                     description="Classify star-cluster candidates in multi-band HST images "
                                 "with transfer-learned CNNs (Wei et al. 2020).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--cite", action="store_true",
                        help="print BibTeX for the method paper and this software")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def common(p, *, device=True):
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if device:
            p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")

    p = sub.add_parser("demo", help="simulate galaxies, train, classify a held-out galaxy")
    p.add_argument("--out", default="clusterclf-demo", help="output directory "
                   "(default ./clusterclf-demo)")
    p.add_argument("--quick", action="store_true", help="smaller fields and model (< 3 min)")
    p.add_argument("--retrain", action="store_true", help="retrain even if a model exists")
    common(p)
    p.set_defaults(func=_cmd_demo)

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

    p = sub.add_parser("train", help="train a classifier on labelled galaxies")
    p.add_argument("--galaxy", action="append", required=True, metavar="CAT=IMAGES_DIR",
                   help="a labelled catalogue and its directory of band files (repeatable)")
    p.add_argument("--label-column", required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    defaults = _train_defaults()
    p.add_argument("--arch", help=f"network (default {defaults['arch']}; also resnet34, "
                   "vgg11_bn, vgg19_bn, small_cnn)")
    p.add_argument("--weights", help="imagenet, none, a pretrained name (e.g. sim-resnet18, "
                   "see 'clusterclf pretrain'), a clusterclf checkpoint to continue from, "
                   f"or a .pth state dict (default {defaults['weights']})")
    p.add_argument("--freeze-backbone-epochs", type=int,
                   help="train only the stem and head for this many epochs first "
                        f"(default {defaults['freeze_backbone_epochs']})")
    p.add_argument("--backbone-lr-factor", type=float,
                   help="backbone learning rate relative to --lr "
                        f"(default {defaults['backbone_lr_factor']})")
    p.add_argument("--cutout-size", type=int, default=DEFAULT_CUTOUT_SIZE,
                   help=f"cutout side in pixels (default {DEFAULT_CUTOUT_SIZE})")
    p.add_argument("--input-size", type=int,
                   help="network input side; cutouts are resized to it (default: cutout size)")
    p.add_argument("--epochs", type=int, help=f"at most this many (default {defaults['epochs']})")
    p.add_argument("--n-models", type=int,
                   help=f"ensemble members (default {defaults['n_models']})")
    p.add_argument("--seed", type=int, help=f"random seed (default {defaults['seed']})")
    p.add_argument("--origin", type=int, choices=(0, 1), default=None)
    p.add_argument("--checkpoint-dir", default=None, help="write a resumable state each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("pretrain", help="pretrain a network on simulated fields "
                       "(named weights such as sim-resnet18)")
    p.add_argument("--out", default=None, help="weights file to write (.pt)")
    p.add_argument("--name", default=None,
                   help="make a registered entry (its recipe) and install it in the cache")
    pre = _pretrain_defaults()
    p.add_argument("--arch", help=f"network (default {pre['arch']})")
    p.add_argument("--n-fields", type=int, help=f"simulated fields (default {pre['n_fields']})")
    p.add_argument("--n-candidates", type=int,
                   help=f"candidates per field (default {pre['n_candidates']})")
    p.add_argument("--epochs", type=int, help=f"at most this many (default {pre['epochs']})")
    p.add_argument("--seed", type=int, help=f"corpus and training seed (default {pre['seed']})")
    p.add_argument("--work-dir", default=None,
                   help="corpus and training checkpoints (default .<out>.pretrain); "
                        "rerun the same command to resume")
    p.add_argument("--keep-work-dir", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("classify", help="add machine classes to a candidate catalogue")
    p.add_argument("--model", required=True, help="checkpoint file")
    p.add_argument("--catalog", required=True,
                   help="candidate catalogue (FITS, ECSV, CSV, LEGUS .tab) or DS9 .reg file")
    _add_images_options(p)
    p.add_argument("--out", required=True, help="output catalogue (.fits or .ecsv)")
    p.add_argument("--regions", default=None, help="also write a DS9 region file")
    p.add_argument("--origin", type=int, choices=(0, 1), default=None,
                   help="pixel convention of x/y columns (0 numpy/PHANGS, 1 FITS/LEGUS)")
    p.add_argument("--use", choices=("auto", "pixel", "sky"), default="auto")
    p.add_argument("--column-style", choices=("default", "phangs"), default="default")
    p.add_argument("--aggregate", choices=("mean", "mode"), default="mean")
    p.add_argument("--tta", action="store_true", help="average over the 8 dihedral transforms")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the model file")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("classify-many", help="classify many galaxies (serial or on Dask)")
    p.add_argument("--manifest", required=True,
                   help="CSV with columns galaxy, catalog, images_dir")
    p.add_argument("--model", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address")
    p.add_argument("--overwrite", action="store_true")
    common(p)
    p.set_defaults(func=_cmd_classify_many)

    p = sub.add_parser("evaluate", help="confusion matrix and per-class recall of two columns")
    p.add_argument("--catalog", required=True)
    p.add_argument("--truth-column", required=True)
    p.add_argument("--pred-column", required=True)
    p.add_argument("--plot", default=None, help="confusion-matrix PNG")
    p.add_argument("--json", default=None, help="report as JSON")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("regions", help="DS9 region file of classified candidates")
    p.add_argument("--catalog", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--column", default="class_ml")
    p.add_argument("--frame", choices=("pixel", "sky"), default="pixel")
    p.add_argument("--radius", type=float, default=5.0, help="circle radius in pixels")
    p.add_argument("--origin", type=int, choices=(0, 1), default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_regions)
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
        args.func(args)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        print(f"clusterclf {args.command}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"clusterclf {args.command}: interrupted; no partial output was written",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
