"""``clusterclf demo``: the whole method on simulated galaxies, in minutes, offline.

Three labelled training galaxies at different distances and one held-out
galaxy are simulated; a model is trained on the first three (ImageNet
initialised when the weights are in the torch cache) and the held-out
galaxy's catalogue is classified through the same code path as
``clusterclf classify``. The per-class recall against the human-like labels
and against the true classes is printed next to Wei et al. (2020).
"""

import dataclasses
import json
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
    seed: int = 0


DEMO_CONFIGS = {
    "full": DemoConfig(name="full", shape=(2048, 2048), n_candidates=800,
                       train_distances_mpc=(6.0, 11.0, 17.0), heldout_distance_mpc=14.0,
                       arch="resnet18", cutout_size=32, input_size=32, epochs=25),
    "quick": DemoConfig(name="quick", shape=(1200, 1200), n_candidates=400,
                        train_distances_mpc=(6.0, 11.0, 17.0), heldout_distance_mpc=14.0,
                        arch="resnet18", cutout_size=32, input_size=32, epochs=10),
}


def _prepare_out_dir(out_dir):
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise FileExistsError(f"{out_dir} exists and was not written by the demo; "
                              "choose another --out directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by clusterclf demo; it may replace files here\n")
    return out_dir


def _simulate(config, distance, seed, target, progress):
    from .datasets import simulate_field
    progress(f"simulating {target} at {distance:g} Mpc "
             f"({config.shape[0]}x{config.shape[1]} px, {config.n_candidates} candidates)")
    return simulate_field(shape=config.shape, n_candidates=config.n_candidates,
                          distance_mpc=distance, label_noise="human", seed=seed,
                          target=target)


def _train(config, model_path, *, device, progress_bar, progress):
    from .models import imagenet_weights_file
    from .training import TrainingSet, train_classifier
    galaxies = []
    for i, distance in enumerate(config.train_distances_mpc):
        field = _simulate(config, distance, config.seed + 1 + i, f"demo-train{i + 1}", progress)
        galaxies.append((field.catalog, field.to_multiband_image(), field.target))
    training_set = TrainingSet.from_galaxies(galaxies, label_column="PHANGS_CLUSTER_CLASS_HUMAN",
                                             cutout_size=config.cutout_size,
                                             progress_bar=progress_bar)
    weights_file = imagenet_weights_file(config.arch)
    if weights_file.exists():
        progress(f"training {config.arch} from ImageNet weights ({weights_file})")
    else:
        progress(f"training {config.arch} from random initialisation: no ImageNet weights "
                 f"at {weights_file} (put them there to fine-tune as in Wei et al. 2020)")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ImageNet weights")  # said just above
        clf = train_classifier(training_set, arch=config.arch, weights="imagenet",
                               input_size=config.input_size, epochs=config.epochs,
                               seed=config.seed, device=device, progress_bar=progress_bar)
    clf.card.training["demo_config"] = config.name
    clf.save(model_path, overwrite=True)
    return clf


def _model_matches(model_path, config):
    from .checkpoint import CheckpointError, load_checkpoint
    try:
        card = load_checkpoint(model_path).card
    except CheckpointError:
        return False
    return card.training.get("demo_config") == config.name


def format_recall_table(report_human, report_true):
    """Per-class recall against both label sets, next to Wei et al. (2020)."""
    from .evaluation import HUMAN_CONSISTENCY, WEI2020_RECALL
    lines = ["class   n  recall(human labels)  recall(true class)  "
             "Wei+2020 (NGC 1559)  human-human",
             "-----  ---  --------------------  ------------------  "
             "-------------------  -----------"]
    for k in CLASSES:
        n = int(report_human.confusion_matrix[k - 1].sum())
        lines.append(f"{k:>5}  {n:>3}  {report_human.recall[k]:>20.2f}  "
                     f"{report_true.recall[k]:>18.2f}  {WEI2020_RECALL[k]:>19}  "
                     f"{HUMAN_CONSISTENCY[k]:>11}")
    lines.append(f"overall accuracy: {report_human.overall_accuracy:.2f} (human labels), "
                 f"{report_true.overall_accuracy:.2f} (true classes)")
    return "\n".join(lines)


def _save_confusion_figure(report_human, report_true, path):
    from matplotlib.figure import Figure

    from .visualization import plot_confusion_matrix, save_figure
    fig = Figure(figsize=(9, 4.2))
    for ax, report, title in zip(fig.subplots(1, 2), (report_human, report_true),
                                 ("against human-like labels", "against true classes")):
        plot_confusion_matrix(report.confusion_matrix, normalize=True, ax=ax, title=title)
    fig.tight_layout()
    save_figure(fig, path, overwrite=True)


def run_demo(out_dir="clusterclf-demo", *, quick=False, retrain=False, device="auto",
             progress_bar=False, printer=print):
    """Simulate, train, classify a held-out galaxy and write every product.

    Parameters
    ----------
    out_dir : str or `~pathlib.Path`, optional
        Output directory (created). An existing non-empty directory must be
        one the demo wrote before: the demo replaces only its own files.
    quick : bool, optional
        Smaller galaxies and fewer epochs (under 3 minutes on 2 CPU cores).
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
    from .pipeline import classify_files
    from .evaluation import EvaluationReport
    from .fileio import atomic_output, write_table
    from .visualization import save_overlay

    start = time.perf_counter()
    config = DEMO_CONFIGS["quick" if quick else "full"]
    out_dir = _prepare_out_dir(out_dir)

    def progress(message):
        printer(f"[{time.perf_counter() - start:6.1f} s] {message}")

    model_path = out_dir / "model.pt"
    if model_path.exists() and not retrain and _model_matches(model_path, config):
        progress(f"reusing the trained model {model_path} (pass --retrain to train again)")
    else:
        _train(config, model_path, device=device, progress_bar=progress_bar, progress=progress)

    heldout = _simulate(config, config.heldout_distance_mpc, config.seed, "demo-heldout",
                        progress)
    heldout_dir = out_dir / "heldout"
    heldout_dir.mkdir(exist_ok=True)
    files = heldout.write(heldout_dir, overwrite=True)
    catalog_path = files["catalog"]

    progress("classifying the held-out galaxy (the clusterclf classify code path)")
    paths = {"model": model_path,
             "catalog_fits": out_dir / "heldout_classified.fits",
             "catalog_ecsv": out_dir / "heldout_classified.ecsv",
             "regions": out_dir / "heldout_classes.reg",
             "confusion_matrix": out_dir / "confusion_matrix.png",
             "overlay": out_dir / "overlay.png",
             "report": out_dir / "report.json"}
    table = classify_files(model_path, catalog_path, heldout_dir, paths["catalog_fits"],
                           regions=paths["regions"], overwrite=True, device=device,
                           progress_bar=progress_bar)
    write_table(table, paths["catalog_ecsv"], overwrite=True)

    # The classified table keeps the catalogue's columns, labels included.
    report_human = EvaluationReport(table["PHANGS_CLUSTER_CLASS_HUMAN"], table["class_ml"],
                                    truth_name="human-like labels", pred_name="class_ml")
    report_true = EvaluationReport(table["CLASS_TRUE"], table["class_ml"],
                                   truth_name="true class", pred_name="class_ml")
    _save_confusion_figure(report_human, report_true, paths["confusion_matrix"])
    save_overlay(heldout.to_multiband_image(), table, paths["overlay"], overwrite=True)
    with atomic_output(paths["report"], overwrite=True) as tmp:
        tmp.write_text(json.dumps({"config": dataclasses.asdict(config),
                                   "human_labels": report_human.to_dict(),
                                   "true_classes": report_true.to_dict()}, indent=2))

    printer("")
    printer(f"Held-out galaxy ({config.heldout_distance_mpc:g} Mpc, {len(table)} candidates):")
    printer(format_recall_table(report_human, report_true))
    printer("")
    printer(f"done in {time.perf_counter() - start:.0f} s; files written:")
    for path in list(paths.values()) + [heldout_dir]:
        printer(f"  {path}")
    return paths
