"""``clusterclf demo``: the whole method on simulated galaxies, in minutes, offline.

Three labelled training galaxies at different distances and one held-out
galaxy are simulated; a model is trained on the first three (from the
simulated-field weights when ``clusterclf pretrain --name sim-<arch>`` has
installed them, else ImageNet when cached, as ``weights="auto"`` in
`~photutils_clusterclf.training.train_classifier`) and the held-out
galaxy's catalogue is classified through the same code path as
``clusterclf classify``. The per-class recall against the human-like labels
and against the true classes is printed next to Wei et al. (2020), with
the range over the ensemble's members: how much one training run varies.
"""

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path

from .classes import CLASSES

__all__ = ["DEMO_CONFIGS", "DemoConfig", "run_demo"]

#: File in the output directory marking it as the demo's own: the demo
#: replaces only files in a directory that carries it.
MARKER = ".clusterclf-demo"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo's galaxies and of its training run."""

    name: str
    shape: tuple
    n_candidates: int
    train_distances_mpc: tuple
    heldout_distance_mpc: float
    arch: str
    cutout_size: int
    input_size: int
    epochs: int
    n_models: int
    seed: int = 0


DEMO_CONFIGS = {
    "full": DemoConfig(
        name="full",
        shape=(2048, 2048),
        n_candidates=800,
        train_distances_mpc=(6.0, 11.0, 17.0),
        heldout_distance_mpc=14.0,
        arch="resnet18",
        cutout_size=32,
        input_size=32,
        epochs=6,
        n_models=3,
    ),
    "quick": DemoConfig(
        name="quick",
        shape=(1200, 1200),
        n_candidates=400,
        train_distances_mpc=(6.0, 11.0, 17.0),
        heldout_distance_mpc=14.0,
        arch="small_cnn",
        cutout_size=32,
        input_size=32,
        epochs=20,
        n_models=3,
    ),
}


def _prepare_out_dir(out_dir):
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(
            f"{out_dir} exists and was not written by the demo; choose another --out directory"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by clusterclf demo; it may replace files here\n")
    return out_dir


def _simulate(config, distance, seed, target, progress):
    from .datasets import simulate_field

    progress(
        f"simulating {target} at {distance:g} Mpc "
        f"({config.shape[0]}x{config.shape[1]} px, {config.n_candidates} candidates)"
    )
    return simulate_field(
        shape=config.shape,
        n_candidates=config.n_candidates,
        distance_mpc=distance,
        label_noise="human",
        seed=seed,
        target=target,
    )


def _starting_weights(arch, progress):
    """``weights="auto"`` for ``arch``, said once (why, when it falls back to random)."""
    from astropy.utils.exceptions import AstropyUserWarning

    from .training import resolve_weights

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        weights = resolve_weights(arch, "auto")
    if weights is None:
        progress("; ".join(str(w.message) for w in caught))
    else:
        progress(f"{arch} starts from the {weights} weights")
    return weights


def _train(config, weights, model_path, *, device, progress_bar, progress):
    import torch

    from .training import TrainingSet, train_classifier

    galaxies = []
    for i, distance in enumerate(config.train_distances_mpc):
        field = _simulate(config, distance, config.seed + 1 + i, f"demo-train{i + 1}", progress)
        galaxies.append((field.catalog, field.to_multiband_image(), field.target))
    training_set = TrainingSet.from_galaxies(
        galaxies,
        label_column="PHANGS_CLUSTER_CLASS_HUMAN",
        cutout_size=config.cutout_size,
        progress_bar=progress_bar,
    )
    progress(f"training {config.arch} from {weights or 'random initialisation'}")
    # The thread count decides the exact numbers (and the speed under load).
    progress(f"{torch.get_num_threads()} torch thread(s), {config.n_models} network(s)")
    start = time.perf_counter()
    clf = train_classifier(
        training_set,
        arch=config.arch,
        weights=weights,
        input_size=config.input_size,
        epochs=config.epochs,
        n_models=config.n_models,
        seed=config.seed,
        device=device,
        progress_bar=progress_bar,
    )
    seconds = time.perf_counter() - start
    clf.card.training["demo_config"] = config.name
    clf.save(model_path, overwrite=True)
    return seconds


def _trained_model(config, model_path, retrain, device, progress_bar, progress):
    """Train the demo's model into ``model_path``, or reuse a matching one (None seconds)."""
    weights = _starting_weights(config.arch, progress)
    if model_path.exists() and not retrain and _model_matches(model_path, config, weights):
        progress(f"reusing the trained model {model_path} (pass --retrain to train again)")
        return None
    return _train(
        config, weights, model_path, device=device, progress_bar=progress_bar, progress=progress
    )


def _model_matches(model_path, config, weights):
    """Whether ``model_path`` is this configuration's model, trained from ``weights``."""
    from .checkpoint import CheckpointError, load_checkpoint

    try:
        card = load_checkpoint(model_path).card
    except CheckpointError:
        return False
    training = card.training
    return training.get("demo_config") == config.name and training.get("options", {}).get(
        "weights"
    ) == (None if weights is None else str(weights))


def _pct(value):
    return "  n/a" if math.isnan(value) else f"{100 * value:3.0f}%"


def wall_time_line(total, training, n_models):
    """The demo's last line: its wall time, and how much of it was training.

    Parameters
    ----------
    total : float
        Seconds from the start of `run_demo` to its end (the command's
        start-up, mostly importing torch, comes before).
    training : float or None
        Seconds spent training the networks; None when a model from an
        earlier run was reused.
    n_models : int
        Number of networks trained.

    Returns
    -------
    str
    """
    minutes, seconds = divmod(round(total), 60)
    line = f"wall time: {minutes} min {seconds:02d} s ({total:.0f} s) in total"
    if training is None:
        return line + "; no training (the model of an earlier run was reused)"
    networks = "network" if n_models == 1 else "networks"
    return line + f", of which {training:.0f} s training {n_models} {networks}"


def member_reports(member_probs, classifiable, truth, **names):
    """One `~photutils_clusterclf.EvaluationReport` per ensemble member.

    Parameters
    ----------
    member_probs : `numpy.ndarray`
        ``(M, N, 4)`` per-member probabilities
        (`~photutils_clusterclf.ClusterClassifier.predict_members`).
    classifiable : `numpy.ndarray`
        ``(N,)`` bool: rows the ensemble classified (the others count as
        not predicted, as in the catalogue).
    truth : array-like
        ``(N,)`` reference classes.
    **names
        ``truth_name`` and ``pred_name`` of the reports.
    """
    import numpy as np

    from .evaluation import EvaluationReport

    preds = np.where(classifiable, member_probs.argmax(axis=2) + 1, 0)
    return [EvaluationReport(truth, pred, **names) for pred in preds]


def format_recall_table(report_human, report_true, members_human=(), members_true=()):
    """Per-class recall of the demo's model next to Wei et al. (2020), all in percent.

    Parameters
    ----------
    report_human, report_true : `~photutils_clusterclf.EvaluationReport`
        The ensemble's predictions against the held-out galaxy's simulated
        human-like labels and against its true (simulated) classes.
    members_human, members_true : list of `~photutils_clusterclf.EvaluationReport`, optional
        The same for each ensemble member: their range is printed after
        each recall (how much one training run varies).

    Returns
    -------
    str
    """
    from .evaluation import HUMAN_CONSISTENCY, WEI2020_RECALL

    def cell(report, members, k=None):
        def value(r):
            return r.overall_accuracy if k is None else r.recall[k]

        text = _pct(value(report)).strip() if k is None else _pct(value(report))
        if len(members) > 1:
            values = [value(m) for m in members]
            text += f" ({_pct(min(values)).strip()}-{_pct(max(values)).strip()})"
        return text

    lines = [
        "Recall per class, in percent: the fraction of the objects of a class given that class.",
        "This demo: the model trained here on simulated galaxies, on the held-out simulated",
        "galaxy, against its simulated human-like labels (n: objects with that label) and",
        "against its true classes"
        + (
            f"; (a-b): the range over the {len(members_human)} ensemble members."
            if len(members_human) > 1
            else "."
        ),
        "Wei+2020: ImageNet-pretrained networks trained on real PHANGS-HST galaxies, tested",
        "on NGC 1559 against real human labels; human-human: agreement between human",
        "classifiers. The data differ: a sanity check, not a comparison of methods.",
        "",
        "       --------------- this demo (simulated) ---------------   "
        + "---- Wei et al. 2020 (real) ----",
        "class    n   vs human-like labels        vs true classes       "
        + "vs human labels    human-human",
    ]
    for k in CLASSES:
        n = int(report_human.confusion_matrix[k - 1].sum())
        lines.append(
            f"{k:>5}  {n:>3}   {cell(report_human, members_human, k):<24s}"
            f"  {cell(report_true, members_true, k):<20s}"
            f"   {WEI2020_RECALL[k]:<15s}    {HUMAN_CONSISTENCY[k]}"
        )
    lines.append(
        f"overall accuracy: {cell(report_human, members_human)} against the "
        f"human-like labels, {cell(report_true, members_true)} against the true "
        "classes"
    )
    return "\n".join(lines)


def confusion_figure(report_human, report_true):
    """The demo's two confusion matrices, side by side, as a `~matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure

    from .visualization import plot_confusion_matrix

    fig = Figure(figsize=(9, 4.2))
    panels = (
        (report_human, "against simulated human-like labels", "human-like label"),
        (report_true, "against true (simulated) classes", "true class"),
    )
    for ax, (report, title, ylabel) in zip(fig.subplots(1, 2), panels):
        plot_confusion_matrix(
            report.confusion_matrix,
            normalize=True,
            ax=ax,
            title=title,
            xlabel="predicted class (this demo's model)",
            ylabel=ylabel,
        )
    fig.tight_layout()
    return fig


def _member_reports(model_path, heldout, table, device):
    """Each ensemble member's reports on the held-out galaxy (human-like, true)."""
    import numpy as np

    from .classifier import ClusterClassifier
    from .cutouts import extract_cutouts

    clf = ClusterClassifier.load(model_path, device=device)
    batch = extract_cutouts(
        heldout.to_multiband_image(),
        np.asarray(table["PHANGS_X"]),
        np.asarray(table["PHANGS_Y"]),
        size=clf.card.cutout_size,
        bands=clf.bands,
    )
    member_probs = clf.predict_members(batch)
    classified = np.asarray(table["class_ml"]) > 0
    return (
        member_reports(
            member_probs,
            classified,
            table["PHANGS_CLUSTER_CLASS_HUMAN"],
            truth_name="human-like labels",
            pred_name="member",
        ),
        member_reports(
            member_probs,
            classified,
            table["CLASS_TRUE"],
            truth_name="true class",
            pred_name="member",
        ),
    )


def run_demo(
    out_dir="clusterclf-demo",
    *,
    quick=False,
    retrain=False,
    device="auto",
    progress_bar=False,
    printer=print,
):
    """Simulate, train, classify a held-out galaxy and write every product.

    Parameters
    ----------
    out_dir : str or `~pathlib.Path`, optional
        Output directory (created). An existing non-empty directory must be
        one the demo wrote before: the demo replaces only its own files.
    quick : bool, optional
        Smaller galaxies and fewer epochs (see `DEMO_CONFIGS`).
    retrain : bool, optional
        Train again even when a model from an earlier run exists.
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    progress_bar : bool, optional
        Show progress bars.
    printer : callable, optional
        Where messages go.

    Returns
    -------
    paths : dict
        Name -> path of every file written.
    """
    start = time.perf_counter()  # before the imports, which the wall time includes
    from .fileio import write_table
    from .pipeline import classify_files

    config = DEMO_CONFIGS["quick" if quick else "full"]
    out_dir = _prepare_out_dir(out_dir)

    def progress(message):
        printer(f"[{time.perf_counter() - start:6.1f} s] {message}")

    model_path = out_dir / "model.pt"
    train_seconds = _trained_model(config, model_path, retrain, device, progress_bar, progress)

    heldout = _simulate(config, config.heldout_distance_mpc, config.seed, "demo-heldout", progress)
    heldout_dir = out_dir / "heldout"
    heldout_dir.mkdir(exist_ok=True)
    files = heldout.write(heldout_dir, overwrite=True)
    catalog_path = files["catalog"]

    progress("classifying the held-out galaxy (the clusterclf classify code path)")
    paths = _output_paths(out_dir, model_path)
    table = classify_files(
        model_path,
        catalog_path,
        heldout_dir,
        paths["catalog_fits"],
        regions=paths["regions"],
        overwrite=True,
        device=device,
        progress_bar=progress_bar,
    )
    write_table(table, paths["catalog_ecsv"], overwrite=True)

    # (human-like, true class) of the ensemble, then of each member
    reports = _ensemble_reports(table) + _member_reports(model_path, heldout, table, device)
    _write_evaluation(paths, config, heldout, table, reports)

    _print_summary(printer, config, table, reports, list(paths.values()) + [heldout_dir])
    printer(wall_time_line(time.perf_counter() - start, train_seconds, config.n_models))
    return paths


def _print_summary(printer, config, table, reports, written):
    """The recall table of the held-out galaxy and the files written."""
    printer("")
    printer(f"Held-out galaxy ({config.heldout_distance_mpc:g} Mpc, {len(table)} candidates):")
    printer(format_recall_table(*reports))
    if config.name == "quick":
        printer(
            f"--quick is a smoke run ({config.n_models} x {config.arch}, {config.epochs} epochs, "
            "smaller galaxies): it shows every step working; clusterclf demo trains the "
            f"default {DEMO_CONFIGS['full'].arch} recipe."
        )
    printer("")
    printer("files written:")
    for path in written:
        printer(f"  {path}")


def _output_paths(out_dir, model_path):
    """The files the demo leaves in ``out_dir``, by role."""
    return {
        "model": model_path,
        "catalog_fits": out_dir / "heldout_classified.fits",
        "catalog_ecsv": out_dir / "heldout_classified.ecsv",
        "regions": out_dir / "heldout_classes.reg",
        "confusion_matrix": out_dir / "confusion_matrix.png",
        "overlay": out_dir / "overlay.png",
        "report": out_dir / "report.json",
    }


def _ensemble_reports(table):
    """The ensemble's reports on the classified held-out galaxy (human-like, true)."""
    from .evaluation import EvaluationReport

    # The classified table keeps the catalogue's columns, labels included.
    report_human = EvaluationReport(
        table["PHANGS_CLUSTER_CLASS_HUMAN"],
        table["class_ml"],
        truth_name="human-like labels",
        pred_name="class_ml",
    )
    report_true = EvaluationReport(
        table["CLASS_TRUE"], table["class_ml"], truth_name="true class", pred_name="class_ml"
    )
    return report_human, report_true


def _write_evaluation(paths, config, heldout, table, reports):
    """Write the confusion matrices, the class overlay and the JSON report."""
    from .fileio import atomic_output
    from .visualization import save_figure, save_overlay

    report_human, report_true, members_human, members_true = reports
    save_figure(
        confusion_figure(report_human, report_true), paths["confusion_matrix"], overwrite=True
    )
    save_overlay(heldout.to_multiband_image(), table, paths["overlay"], overwrite=True)
    with atomic_output(paths["report"], overwrite=True) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "config": dataclasses.asdict(config),
                    "human_labels": report_human.to_dict(),
                    "true_classes": report_true.to_dict(),
                    "members_human_labels": [m.to_dict() for m in members_human],
                    "members_true_classes": [m.to_dict() for m in members_true],
                },
                indent=2,
            )
        )
