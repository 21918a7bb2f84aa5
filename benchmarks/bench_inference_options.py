"""Inference options of the default network on this machine: speed and accuracy.

For the default configuration (resnet18, 5 bands, 32 px input) it times
one forward pass + softmax per option on the same normalised batches and
compares the probabilities with the reference (eager float32, contiguous
memory, ``torch.inference_mode``, the unfused network):

- ``eager``: the reference;
- ``channels_last``: NHWC memory format of weights and inputs (oneDNN);
- ``bn_folded``: batch normalisation folded into the convolutions
  (`torch.fx.experimental.optimization.fuse`);
- ``bn_folded+channels_last``: both;
- ``package``: what `~photutils_clusterclf.ClusterClassifier` runs now
  (``InferenceEngine.member_probs``);
- ``jit_optimized``: `torch.jit.optimize_for_inference` of a traced model
  (freezing, conv-bn folding, oneDNN conversion);
- ``compile`` (with ``--compile``): `torch.compile` (inductor), after a
  warm-up that is not timed;
- ``onnxruntime`` (if importable): the ONNX export run by ONNX Runtime's
  CPU provider;
- the package path with other thread counts and batch sizes.

The machine is shared, so options are timed round-robin (``--rounds``
rounds, best round kept per option) and reported as ratios to the
reference measured in the same run. Random weights give near-uniform
probabilities, which would make the accuracy check empty; the final
layer's weights are therefore scaled (``--logit-scale``) so that the
reference probabilities spread over 0..1. Every option must stay within
``1e-4`` (absolute) of the reference probabilities.

Run::

    python benchmarks/bench_inference_options.py            # CPU
    python benchmarks/bench_inference_options.py --device cuda --autocast   # GPU, untested here
"""

import argparse
import copy
import sys
import time

import numpy as np
import torch

TOLERANCE = 1e-4
# bf16/fp16 autocast keeps about 3 significant digits in the logits.
AUTOCAST_TOLERANCE = 2e-2


def normalized_batches(n_objects, batch_size, *, size=2000, n_candidates=5000):
    """Real normalised cutouts of a (cached) simulated field, in CPU batches."""
    from bench_classify import BANDS, CUTOUT_SIZE, INPUT_SIZE, field_files

    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.cutouts import extract_cutouts
    from photutils_clusterclf.images import MultiBandImage
    from photutils_clusterclf.preprocessing import Normalization, prepare_batch

    paths, _ = field_files(size, n_candidates)
    cat = read_catalog(paths["catalog"])[:n_objects]
    images = MultiBandImage.from_fits({b: paths[b] for b in BANDS})
    raw = extract_cutouts(
        images,
        np.asarray(cat["PHANGS_X"]),
        np.asarray(cat["PHANGS_Y"]),
        size=CUTOUT_SIZE,
        bands=BANDS,
    ).data
    norm = Normalization()
    return [
        prepare_batch(raw[s : s + batch_size], norm, INPUT_SIZE)
        for s in range(0, len(raw), batch_size)
    ]


def sharpened_model(logit_scale, seed=0):
    """Randomly initialised default network whose head gives spread-out probabilities."""
    from photutils_clusterclf import build_model

    torch.manual_seed(seed)
    model = build_model("resnet18", n_bands=5, n_classes=4)
    with torch.no_grad():
        model.fc.weight.mul_(logit_scale)
    return model.eval()


def softmax_runner(module, *, channels_last=False, device="cpu"):
    """``batch -> probabilities`` for a plain module."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(batch):
        with torch.inference_mode():
            x = batch.to(device).contiguous(memory_format=fmt)
            return torch.softmax(module(x).float(), dim=1).cpu()

    return run


def options(model, batches, args):
    """Name -> (runner, batches, tolerance)."""
    from torch.fx.experimental.optimization import fuse

    from photutils_clusterclf import ClusterClassifier

    device = torch.device(args.device)
    eager = copy.deepcopy(model).to(device)
    folded = fuse(copy.deepcopy(model)).to(device)
    out = {
        "eager": (softmax_runner(eager, device=device), batches, TOLERANCE),
        "channels_last": (
            softmax_runner(
                copy.deepcopy(eager).to(memory_format=torch.channels_last),
                channels_last=True,
                device=device,
            ),
            batches,
            TOLERANCE,
        ),
        "bn_folded": (softmax_runner(folded, device=device), batches, TOLERANCE),
        "bn_folded+channels_last": (
            softmax_runner(
                copy.deepcopy(folded).to(memory_format=torch.channels_last),
                channels_last=True,
                device=device,
            ),
            batches,
            TOLERANCE,
        ),
    }
    clf = ClusterClassifier.from_model(
        copy.deepcopy(model),
        arch="resnet18",
        bands=("F275W", "F336W", "F438W", "F555W", "F814W"),
        cutout_size=32,
        device=device,
    )
    out["package"] = (
        lambda b: torch.from_numpy(clf._engine.member_probs(b, tta=False)[0]),
        batches,
        TOLERANCE,
    )
    if args.autocast and device.type == "cuda":
        for dtype in (torch.bfloat16, torch.float16):
            amp = ClusterClassifier.from_model(
                copy.deepcopy(model),
                arch="resnet18",
                bands=clf.bands,
                cutout_size=32,
                device=device,
            )
            amp.autocast_dtype = dtype
            out[f"package+autocast_{str(dtype)[6:]}"] = (
                lambda b, amp=amp: torch.from_numpy(amp._engine.member_probs(b, tta=False)[0]),
                batches,
                AUTOCAST_TOLERANCE,
            )
    if device.type == "cpu":
        with torch.inference_mode():
            traced = torch.jit.trace(copy.deepcopy(model), batches[0])
        jitted = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        out["jit_optimized"] = (softmax_runner(jitted), batches, TOLERANCE)
    if args.compile:
        compiled = torch.compile(copy.deepcopy(folded).to(memory_format=torch.channels_last))
        run = softmax_runner(compiled, channels_last=True, device=device)
        for b in batches[:2]:
            run(b)  # compilation, not timed (dynamic=False: one shape)
        out["compile"] = (run, batches, TOLERANCE)
    ort = onnx_runner(model, batches[0]) if device.type == "cpu" else None
    if ort is not None:
        out["onnxruntime"] = (ort, batches, TOLERANCE)
    for bs in args.batch_sizes:
        if bs != len(batches[0]):
            rebatched = list(torch.cat(batches).split(bs))
            out[f"package batch={bs}"] = (out["package"][0], rebatched, TOLERANCE)
    return out


def onnx_runner(model, example):
    """ONNX Runtime CPU session of the model, or None when not installed."""
    try:
        import io

        import onnxruntime
    except ImportError:
        return None
    buffer = io.BytesIO()
    torch.onnx.export(
        copy.deepcopy(model),
        (example,),
        buffer,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "n"}},
        dynamo=False,
    )
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(
        buffer.getvalue(), opts, providers=["CPUExecutionProvider"]
    )

    def run(batch):
        logits = session.run(None, {"x": batch.numpy()})[0]
        return torch.softmax(torch.from_numpy(logits), dim=1)

    return run


def main(argv=None):
    """Print the table option -> objects/s, ratio to eager, max |dp|."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-objects", type=int, default=1024)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the package default for the device"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[32, 64, 256, 512])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=[1],
        help="extra torch thread counts to try on the package path",
    )
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch threads of all options (default: torch's default)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logit-scale", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    parser.add_argument(
        "--autocast", action="store_true", help="also try bf16/fp16 autocast (CUDA only)"
    )
    args = parser.parse_args(argv)
    from photutils_clusterclf._inference import default_batch_size

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    batch_size = args.batch_size or default_batch_size(args.device)
    batches = normalized_batches(args.n_objects, batch_size)
    model = sharpened_model(args.logit_scale)
    opts = options(model, batches, args)
    reference = torch.cat([opts["eager"][0](b) for b in batches])
    print(
        f"reference probabilities: mean max-probability "
        f"{reference.max(dim=1).values.mean():.3f}, std per class "
        f"{np.round(reference.std(dim=0).numpy(), 3).tolist()}"
    )
    default_threads = torch.get_num_threads()
    runs = [(name, default_threads) for name in opts]
    runs += [("package", t) for t in args.threads if t != default_threads]
    best = {}
    worst_dp = {}
    for _ in range(args.rounds):
        for name, threads in runs:
            run, bat, _tol = opts[name]
            torch.set_num_threads(threads)
            run(bat[0])  # warm-up (oneDNN primitive caches)
            start = time.perf_counter()
            probs = torch.cat([run(b) for b in bat])
            elapsed = time.perf_counter() - start
            key = name if threads == default_threads else f"{name} threads={threads}"
            best[key] = min(best.get(key, np.inf), elapsed)
            worst_dp[key] = float((probs - reference).abs().max())
    torch.set_num_threads(default_threads)
    n = sum(len(b) for b in batches)
    base = n / best["eager"]
    print(
        f"device {args.device}, {n} objects, batch {batch_size}, "
        f"{default_threads} threads, best of {args.rounds} round-robin rounds"
    )
    print(f"{'option':34s} {'objects/s':>10s} {'ratio':>7s} {'max |dp|':>10s}")
    ok = True
    for key in best:
        tol = opts[key.split(" ")[0]][2]
        rate = n / best[key]
        flag = "" if worst_dp[key] <= tol else f"  > {tol:g}!"
        ok &= not flag
        print(f"{key:34s} {rate:10.0f} {rate / base:7.2f} {worst_dp[key]:10.2e}{flag}")
    print(f"all_within_tolerance={ok}")
    return ok


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    sys.exit(0 if main() else 1)
