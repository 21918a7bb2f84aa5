"""The batched inference engine behind `~photutils_clusterclf.ClusterClassifier` (private).

It runs the (batch-norm-folded, channels-last) networks of an ensemble on
prepared batches, and streams a catalogue through them: rows are cut out
and normalised in chunks in a background thread while the networks run
on the previous batch, so memory is bounded whatever the catalogue length.
"""

import concurrent.futures
import copy

import numpy as np
import torch

from .cutouts import extract_cutouts
from .models import resolve_device
from .preprocessing import DIHEDRAL_TRANSFORMS, dihedral, prepare_batch
from .utils.progress import progress_bar as _progress_bar

__all__ = []


def default_batch_size(device):
    """Batch size that keeps a device busy without exhausting its memory."""
    return 512 if resolve_device(device).type == "cuda" else 128


def _inference_module(model):
    """An inference copy of an eval-mode network: batch norm folded, channels-last.

    Folding batch normalisation into the preceding convolutions removes a
    memory-bound pass per layer, and channels-last (NHWC) is the layout
    oneDNN and cuDNN convolutions run fastest in; together they change the
    probabilities by about 1e-5 (benchmarks/bench_inference_options.py).
    """
    from torch.fx.experimental.optimization import fuse

    try:
        runner = fuse(model)  # a copy: the given model keeps its layers for saving
    except Exception:  # noqa: BLE001 - fx cannot trace every custom network;
        # folding is only an optimisation, the network itself is still fine.
        runner = copy.deepcopy(model)
    return runner.to(memory_format=torch.channels_last)


class InferenceEngine:
    """Optimised copies of an ensemble's networks, and the loops that feed them.

    Parameters
    ----------
    models : list of `torch.nn.Module`
        The eval-mode networks, on ``device``; they are not modified.
    card : `~photutils_clusterclf.checkpoint.ModelCard`
        Bands, cutout and input size, and the temperature dividing the
        logits before the softmax; the classifier replaces it when its
        temperature is set.
    normalization : `~photutils_clusterclf.preprocessing.Normalization`
        The card's normalisation.
    device : `torch.device`
        Where the networks run.
    """

    def __init__(self, models, card, normalization, device):
        self.card = card
        self.bands = tuple(card.bands)
        self.normalization = normalization
        self.device = device
        self.runners = [_inference_module(m) for m in models]
        #: ``None`` (float32) or ``torch.bfloat16`` / ``torch.float16``: autocast
        #: of the forward pass, used on CUDA only.
        self.autocast_dtype = None

    def member_probs(self, inputs, *, tta):
        """``(M, n, 4)`` probabilities of a prepared CPU batch.

        ``softmax(logits / T)`` with ``T`` the card's temperature.
        """
        transforms = range(DIHEDRAL_TRANSFORMS) if tta else (0,)
        cuda = self.device.type == "cuda"
        # Asynchronous only from pinned memory (what `stream` hands over on CUDA).
        x = inputs.to(self.device, non_blocking=cuda and inputs.is_pinned())
        # One forward pass over all transforms: bigger batches run faster.
        x = torch.cat([dihedral(x, k) for k in transforms]) if tta else x
        x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast(
            "cuda",
            dtype=self.autocast_dtype or torch.float16,
            enabled=cuda and self.autocast_dtype is not None,
        )
        out = []
        with torch.inference_mode(), amp:
            for model in self.runners:
                # Temperature scaling (calibration.py): T = 1 leaves them as trained.
                p = torch.softmax(model(x).float() / self.card.temperature, dim=1)
                out.append(p.reshape(len(transforms), -1, p.shape[1]).mean(dim=0))
        return torch.stack(out).cpu().numpy()

    def predict_members(self, raw, *, tta, batch_size, progress_bar):
        """``(M, N, 4)`` probabilities of raw ``(N, B, S, S)`` cutouts, batch by batch."""
        out = np.empty((len(self.runners), len(raw), 4), dtype=np.float32)
        with _progress_bar(
            total=len(raw), desc="classify", unit="obj", enabled=progress_bar
        ) as bar:
            for start in range(0, len(raw), batch_size):
                stop = min(start + batch_size, len(raw))
                inputs = prepare_batch(raw[start:stop], self.normalization, self.card.input_size)
                out[:, start:stop] = self.member_probs(inputs, tta=tta)
                bar.update(stop - start)
        return out

    def prepared_batches(self, images, x, y, flags, batch_size):
        """Yield ``(rows, inputs, n_scanned)`` for full batches of classifiable rows.

        Rows are cut out in chunks; the classifiable ones are buffered until
        a whole batch is ready, so that catalogues with many unclassifiable
        rows (off the footprint, NaN positions) still run the network on
        full batches. ``flags`` is filled in as rows are scanned. Memory is
        bounded by the chunk size, whatever the catalogue length.
        """
        chunk = max(batch_size, 2048)
        rows = np.empty(0, dtype=np.intp)
        data = None
        for start in range(0, len(x), chunk):
            sl = slice(start, min(start + chunk, len(x)))
            batch = extract_cutouts(
                images, x[sl], y[sl], size=self.card.cutout_size, bands=self.bands
            )
            flags[sl] = batch.flags
            ok = np.flatnonzero(batch.classifiable)
            # Rows left over from the previous chunk, then this chunk's.
            rows = np.concatenate([rows, ok + start])
            data = batch.data[ok] if data is None else np.concatenate([data, batch.data[ok]])
            n_full = len(rows) - len(rows) % batch_size
            for i in range(0, n_full, batch_size):
                yield rows[i : i + batch_size], self.inputs(data[i : i + batch_size]), sl.stop
            rows, data = rows[n_full:], data[n_full:]
        if len(rows):
            yield rows, self.inputs(data), len(x)

    def inputs(self, raw):
        """Network input for raw cutouts, pinned on CUDA so the copy to the GPU overlaps."""
        inputs = prepare_batch(raw, self.normalization, self.card.input_size)
        return inputs.pin_memory() if self.device.type == "cuda" else inputs

    def stream(self, images, x, y, flags, *, tta, batch_size, progress_bar):
        """Yield ``(rows, member_probs)`` batch by batch.

        The next batch is cut out and normalised in a background thread
        while the networks run on the current one.
        """
        batches = self.prepared_batches(images, x, y, flags, batch_size)
        with (
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
            _progress_bar(total=len(x), desc="classify", unit="obj", enabled=progress_bar) as bar,
        ):
            pending = pool.submit(next, batches, None)
            while (item := pending.result()) is not None:
                pending = pool.submit(next, batches, None)
                rows, inputs, n_scanned = item
                yield rows, self.member_probs(inputs, tta=tta)
                bar.update(n_scanned - bar.n)
            bar.update(len(x) - bar.n)
