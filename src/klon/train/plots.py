"""`klon plot`: the talk's two figures for a model (target vs prediction in time, and their
spectra) and its training curves."""
import os
from pathlib import Path

import numpy as np

from klon.core.errors import KlonError
from klon.core.figures import pyplot, save_figure
from klon.core.metrics import clip_esr
from klon.core.paths import find_data
from klon.train import data as datasets
from klon.train import export
from klon.train.evaluate import predict


def _data_for(metadata, data_path):
    """The clips to draw: --data, else the data the model was trained on (its file records
    where: `training_data`), else the reference clips at the model's Gain."""
    gain = metadata.get("gain")
    if data_path is not None:
        return datasets.load(data_path, gain)
    origin = metadata.get("training_data")
    if isinstance(origin, dict):
        paths = [origin.get(k) for k in ("input", "target", "folder") if origin.get(k)]
        missing = [p for p in paths if not isinstance(p, str) or not os.path.exists(p)]
        if missing:
            raise KlonError(f"the data this model was trained on is not at '{missing[0]}' any "
                            f"more: give --data")
        if "folder" in origin:
            return datasets.load(origin["folder"], gain)
        if "input" in origin and "target" in origin:
            return datasets.load_pair(origin["input"], origin["target"])
    if gain is None:
        raise KlonError("this model has no Gain setting and its file does not say what it was "
                        "trained on: give --data")
    root = find_data()
    if root is None:
        raise KlonError("no data to plot against: give --data (the reference clips were "
                        "not found)")
    return datasets.load(root / "klon-ltspice", gain)


def plot_model(model_path: str | os.PathLike, data_path: str | os.PathLike | None = None,
               clip: str | None = None, out_dir: str | os.PathLike = "out/plots") -> list[Path]:
    """Draw the figures; returns the paths written."""
    model, metadata = export.load(model_path)
    data = _data_for(metadata, data_path)
    knobs = metadata.get("inputs", ["audio"])[1:] if model.inputs > 1 else []
    if len(knobs) != model.inputs - 1:
        raise KlonError(f"'{model_path}' has {model.inputs} inputs and its file does not name "
                        f"its knobs: klon plot needs its metadata's \"inputs\"")
    if knobs:  # a conditioned model plays each clip along the clip's own knob values
        data = data.with_knobs(knobs)
    rate = metadata.get("sample_rate", data.sample_rate)
    if rate != data.sample_rate:
        raise KlonError(f"the model runs at {rate} Hz but the data is at {data.sample_rate} Hz: "
                        f"give --data at the model's rate")
    names = list(data.names)
    validation = metadata.get("validation_clips")
    if not (isinstance(validation, list) and validation and validation[0] in names):
        validation = names  # another model's data, or a file that does not say
    clip = clip or validation[0]
    if clip not in names:
        raise KlonError(f"no clip named {clip!r} in {data.source} (e.g. {names[0]})")
    i = names.index(clip)
    s = data.score_start
    target = data.targets[i, s:]
    prediction = predict(model, data.model_inputs[i] if knobs else data.inputs[i])[s:]
    esr = clip_esr(prediction, target)[1]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise KlonError(f"cannot make the folder '{out}': {error.strerror or error}") from None
    stem = Path(model_path).stem
    title = f"{stem}, {clip} (ESR {100 * esr:.2f} %)"
    for k, name in enumerate(knobs):  # where the knobs were during the clip
        low, high = data.knobs[i, s:, k].min(), data.knobs[i, s:, k].max()
        title += f", {name} {low:.2f}" + (f"-{high:.2f}" if high > low else "")
    plt = pyplot()
    written = []

    # time: 40 ms around the loudest moment
    rate = data.sample_rate
    width = int(0.04 * rate)
    centre = int(np.argmax(np.abs(target)))
    a = max(0, min(centre - width // 2, len(target) - width))
    t = 1000.0 * (np.arange(a, a + width) + s) / rate
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, target[a:a + width], label="target", linewidth=2.0)
    ax.plot(t, prediction[a:a + width], "--", label="prediction", linewidth=1.4)
    ax.plot(t, target[a:a + width] - prediction[a:a + width], label="error", linewidth=0.8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("volts")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written.append(out / f"{stem}-time.png")
    save_figure(fig, written[-1])

    # spectra of the scored part
    window = np.hanning(len(target))
    freqs = np.fft.rfftfreq(len(target), 1.0 / rate)
    fig, ax = plt.subplots(figsize=(9, 4))
    for signal, label, style in ((target, "target", "-"), (prediction, "prediction", "--")):
        spectrum = np.abs(np.fft.rfft(signal * window)) / np.sum(window)
        ax.semilogx(freqs[1:], 20 * np.log10(spectrum[1:] + 1e-12), style, label=label,
                    linewidth=1.0)
    ax.set_xlim(20, rate / 2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("magnitude (dB re 1 V)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    written.append(out / f"{stem}-spectrum.png")
    save_figure(fig, written[-1])

    history = metadata.get("history")
    if isinstance(history, dict) and _is_history(history):
        written.append(out / f"{stem}-training.png")
        plot_curves({stem: history}, written[-1])
    return written


def _is_history(history: dict) -> bool:
    """Epochs and the two ESR curves, as many numbers each: what plot_curves draws."""
    curves = [history.get(k) for k in ("epoch", "train_esr", "validation_esr")]
    return (all(isinstance(c, list) and all(isinstance(v, (int, float)) for v in c)
                for c in curves) and len(curves[0]) > 0
            and len({len(c) for c in curves}) == 1)


def plot_curves(histories: dict[str, dict], path: str | os.PathLike) -> None:
    """Train and validation ESR per epoch for several models (name -> history) on one figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, h) in enumerate(histories.items()):
        colour = f"C{i}"
        ax.semilogy(h["epoch"], 100 * np.asarray(h["validation_esr"]), color=colour,
                    label=f"{name} validation")
        ax.semilogy(h["epoch"], 100 * np.asarray(h["train_esr"]), ":", color=colour,
                    label=f"{name} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ESR (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
