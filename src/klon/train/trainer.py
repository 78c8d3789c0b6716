"""Training a neural gain stage: Adam on the ESR loss with truncated back-propagation through
time, validation ESR every epoch, a learning-rate schedule, early stopping, and checkpoints
that resume exactly.

Each minibatch of clips first runs `warmup` samples before the scored part without gradients
(the state settles), then the scored part in windows of `tbptt` samples: one Adam step per
window, the state carried on (detached) into the next. With `zero_start` the first window of
each minibatch also scores that many samples of silence run from a zero state (its target is
silence): RTNeural-based hosts start a model from zero and rarely pre-roll it, and a model
never shown that start can jump by volts there.

A Gain-conditioned dataset (knob channels beside the audio) trains a model with one input per
channel: the audio, then the knobs.

The learning rate halves after `plateau` epochs without a better validation ESR, or with
schedule "cosine" falls along half a cosine to min_learning_rate at the end of the run: after
`epochs` epochs, or at the end of the `minutes` budget if that comes first (a run of fixed
length converges better annealed than waiting for plateaus it has no time for).

The order of clips comes from a seeded generator and the fused CPU kernels are deterministic,
so a seed and an epoch count fix the result (not a time budget: it depends on the machine's
speed); a resumed run continues exactly where the checkpoint left it.
"""
import copy
import math
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from klon.core.errors import KlonError
from klon.core.metrics import clip_esr
from klon.neural.model_file import read_model
from klon.train.data import split
from klon.train.export import from_spec
from klon.train.loss import esr_loss
from klon.train.nets import GainStageNet, detach_state


@dataclass
class TrainConfig:
    hidden: int = 8
    cell: str = "gru"
    epochs: int = 1000  # at most; early stopping usually ends sooner
    batch_size: int = 16
    learning_rate: float = 5e-3
    min_learning_rate: float = 1e-5
    plateau: int = 15  # epochs without a better validation ESR before the rate halves
    patience: int = 60  # epochs without a better validation ESR before training stops
    tbptt: int = 2048  # samples per gradient step
    warmup: int = 2048  # samples run before the scored part, without gradients
    pre_emphasis: float = 0.0
    dc_weight: float = 0.0
    gradient_clip: float = 1.0
    validation: int = None  # clips held out (default: 1 in 16)
    seed: int = 0
    minutes: float = None  # wall-clock budget (the result then depends on the machine's speed)
    device: str = "auto"  # "cpu", "cuda" or "auto" (the GPU when there is one)
    zero_start: int = 0  # samples of silence from a zero state scored in each minibatch
    schedule: str = "plateau"  # "plateau": halve on plateaus; "cosine": anneal to the end
    loss: str = "pooled"  # "pooled": one ESR over the minibatch; "clip": the mean of clip ESRs
    init: str | None = None  # a model file whose weights the run starts from (fine-tuning)


@dataclass
class History:
    epoch: list = field(default_factory=list)
    train_esr: list = field(default_factory=list)
    validation_esr: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    seconds: list = field(default_factory=list)


def _device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise KlonError("--device cuda: no CUDA GPU is available to torch here")
    if name not in ("cpu", "cuda"):
        raise KlonError(f"unknown device {name!r}: choose cpu, cuda or auto")
    return torch.device(name)


class Trainer:
    """Trains one model on one PairedAudio; `run()` returns the best model (by validation ESR)."""

    def __init__(self, data, config=None, checkpoint=None, log=sys.stderr, label=""):
        self.config = config or TrainConfig()
        cfg = self.config
        if cfg.batch_size < 1 or cfg.tbptt < 1 or cfg.hidden < 1:
            raise KlonError("batch size, TBPTT length and hidden size must be positive")
        self.data = data
        self.checkpoint = checkpoint
        self.log = log
        self.label = label
        self.device = _device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = GainStageNet(cfg.hidden, cfg.cell, 1 + len(data.knob_names))
        if cfg.init:
            self._start_from(cfg.init)
        self.model.to(self.device)
        self.train_index, self.validation_index = split(len(data), cfg.validation, cfg.seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        if cfg.schedule not in ("plateau", "cosine"):
            raise KlonError(f"unknown schedule {cfg.schedule!r}: choose plateau or cosine")
        if cfg.loss not in ("pooled", "clip"):
            raise KlonError(f"unknown loss {cfg.loss!r}: choose pooled or clip")
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=0.5, patience=cfg.plateau, min_lr=cfg.min_learning_rate)
        self.steps = 0  # Adam steps taken (the cosine schedule's clock)
        self.order = np.random.default_rng(cfg.seed + 1)
        self.history = History()
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.best_esr = math.inf
        self.best_epoch = 0
        self.seconds = 0.0
        self.finished = False  # the run has ended (epoch limit, patience or time budget)
        start = data.score_start
        self.first = max(0, start - cfg.warmup)
        self.x_all = torch.from_numpy(data.model_inputs.astype(np.float32))
        self.x = self.x_all[:, self.first:]
        self.y = torch.from_numpy(data.targets[:, self.first:].astype(np.float32))
        self.scored = start - self.first

    def _start_from(self, path):
        """Copy a model file's weights into the net, when it is the same kind of model for the
        same data."""
        spec = read_model(path)
        net = self.model
        theirs = f"{spec.kind.upper()}-{spec.hidden_size} with {spec.inputs} input(s)"
        ours = f"{net.cell.upper()}-{net.hidden} with {net.inputs} input(s)"
        if theirs != ours:
            raise KlonError(f"--init: '{path}' is a {theirs}; this run trains a {ours} (give "
                            f"--hidden and --cell to match, or data with the same knobs)")
        if abs(spec.sample_rate - self.data.sample_rate) > 1e-6:
            raise KlonError(f"--init: '{path}' runs at {spec.sample_rate:g} Hz, the data at "
                            f"{self.data.sample_rate:g} Hz")
        net.load_state_dict(from_spec(spec).state_dict())

    # --- one epoch -------------------------------------------------------------------------
    def _train_epoch(self):
        cfg = self.config
        model = self.model.train()
        clips = self.train_index[self.order.permutation(len(self.train_index))]
        steps_per_epoch = (-(-len(clips) // cfg.batch_size)
                           * -(-(self.x.shape[1] - self.scored) // cfg.tbptt))
        error = energy = 0.0
        for first in range(0, len(clips), cfg.batch_size):
            batch = torch.from_numpy(clips[first:first + cfg.batch_size])
            x = self.x[batch].to(self.device)
            y = self.y[batch].to(self.device)
            with torch.no_grad():
                _, state = model(x[:, :self.scored])
            for start in range(self.scored, x.shape[1], cfg.tbptt):
                stop = min(start + cfg.tbptt, x.shape[1])
                prediction, state = model(x[:, start:stop], state)
                target = y[:, start:stop]
                loss = esr_loss(prediction, target, cfg.pre_emphasis, cfg.dc_weight,
                                per_clip=cfg.loss == "clip")
                if cfg.zero_start and start == self.scored:
                    loss = loss + self._zero_start_error(x) / (torch.sum(target ** 2) + 1e-10)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.gradient_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.gradient_clip)
                if cfg.schedule == "cosine":
                    self._anneal(steps_per_epoch)
                self.optimizer.step()
                self.steps += 1
                state = detach_state(state)
                with torch.no_grad():
                    error += float(torch.sum((target - prediction) ** 2))
                    energy += float(torch.sum(target ** 2))
        return error / max(energy, 1e-30)

    def _anneal(self, steps_per_epoch):
        """The cosine schedule's rate for the next step: how far the run is, by steps or by
        the clock, whichever is further."""
        cfg = self.config
        done = self.steps / (cfg.epochs * steps_per_epoch)
        if cfg.minutes is not None:
            done = max(done, (time.perf_counter() - self.started) / (60 * cfg.minutes))
        low, high = cfg.min_learning_rate, cfg.learning_rate
        rate = low + 0.5 * (high - low) * (1 + math.cos(math.pi * min(done, 1.0)))
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def _zero_start_error(self, x):
        """Squared output summed over `zero_start` samples of silence from a zero state, the
        knobs held where the batch's clips start."""
        silence = x.new_zeros(x.shape[0], self.config.zero_start, x.shape[2])
        silence[:, :, 1:] = x[:, :1, 1:]
        prediction, _ = self.model(silence)
        return torch.sum(prediction ** 2)

    def validate(self):
        """(per-clip ESR, pooled ESR) on the scored part of the validation clips, each run
        from sample 0 with the state at rest."""
        with torch.no_grad():
            x = self.x_all[self.validation_index].to(self.device)
            y, _ = self.model.eval()(x)
        s = self.data.score_start
        return clip_esr(y.cpu().numpy()[:, s:], self.data.targets[self.validation_index, s:])

    # --- the loop ---------------------------------------------------------------------------
    def run(self, after_epoch=None):
        """Train until the epoch limit, the patience or the time budget ends it. `after_epoch`
        (a function of the trainer) runs after every epoch, its checkpoint written: it may
        read `history`, `best_epoch` and `finished` (whether this epoch was the last)."""
        cfg = self.config
        started = self.started = time.perf_counter() - self.seconds
        stale = len(self.history.epoch) - self.best_epoch if self.history.epoch else 0
        for epoch in range(len(self.history.epoch) + 1, cfg.epochs + 1):
            train = self._train_epoch()
            _, validation = self.validate()
            if not math.isfinite(train) or not math.isfinite(validation):
                raise KlonError(f"training diverged at epoch {epoch} (ESR {train}); try a "
                                f"smaller --learning-rate")
            if cfg.schedule == "plateau":
                self.scheduler.step(validation)
            self.seconds = time.perf_counter() - started
            h = self.history
            h.epoch.append(epoch)
            h.train_esr.append(train)
            h.validation_esr.append(validation)
            h.learning_rate.append(self.optimizer.param_groups[0]["lr"])
            h.seconds.append(self.seconds)
            if validation < self.best_esr:
                self.best_esr, self.best_epoch, stale = validation, epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
            else:
                stale += 1
            if self.checkpoint:
                self.save_checkpoint(self.checkpoint)
            out_of_time = cfg.minutes is not None and self.seconds > 60 * cfg.minutes
            stop = stale >= cfg.patience or out_of_time
            self.finished = stop or epoch == cfg.epochs
            self._progress(epoch, epoch if stop else cfg.epochs)
            if after_epoch is not None:
                after_epoch(self)
            if stop:
                break
        if self.log and self._tty():
            print(file=self.log)
        self.model.load_state_dict(self.best_state)
        return self.model

    def _tty(self):
        return getattr(self.log, "isatty", lambda: False)()

    def _progress(self, epoch, final=None):
        """A live line on a terminal; in a log file, every tenth epoch."""
        if not self.log or (not self._tty() and epoch % 10 and epoch not in (1, final)):
            return
        cfg = self.config
        done = epoch / cfg.epochs
        bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
        h = self.history
        minutes, seconds = divmod(int(self.seconds), 60)
        print(f"\r{self.label}epoch {epoch:>4}/{cfg.epochs} [{bar}] train ESR "
              f"{100 * h.train_esr[-1]:.3f} % validation {100 * h.validation_esr[-1]:.3f} % "
              f"(best {100 * self.best_esr:.3f} % @ {self.best_epoch}) lr "
              f"{h.learning_rate[-1]:.1e} {minutes}:{seconds:02d}",
              end="" if self._tty() else "\n", file=self.log, flush=True)

    # --- checkpoints --------------------------------------------------------------------------
    def state(self):
        return {"config": asdict(self.config), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "order": self.order.bit_generator.state, "history": asdict(self.history),
                "best_state": self.best_state, "best_esr": self.best_esr,
                "best_epoch": self.best_epoch, "seconds": self.seconds, "steps": self.steps,
                "data": {"source": self.data.source, "clips": len(self.data),
                         "validation": self.validation_index.tolist()}}

    def save_checkpoint(self, path):
        path = os.fspath(path)
        temporary = f"{path}.{secrets.token_hex(4)}.tmp"
        torch.save(self.state(), temporary)
        os.replace(temporary, path)

    def resume(self, path):
        """Continue from a checkpoint written by a run with the same data and settings (the
        epoch limit and time budget may differ)."""
        try:
            saved = torch.load(path, weights_only=False)
        except FileNotFoundError:
            raise KlonError(f"cannot resume: no checkpoint at '{path}'") from None
        except Exception as error:  # a truncated or foreign file
            raise KlonError(f"cannot resume from '{path}': not a klon checkpoint "
                            f"({error})") from None
        ours = asdict(self.config)
        changed = [k for k, v in saved["config"].items()
                   if k not in ("epochs", "minutes", "patience", "device") and ours.get(k) != v]
        if changed:
            raise KlonError(f"cannot resume from '{path}': it was trained with different "
                            f"settings ({', '.join(changed)})")
        if saved["data"]["validation"] != self.validation_index.tolist() \
                or saved["data"]["clips"] != len(self.data):
            raise KlonError(f"cannot resume from '{path}': it was trained on other data "
                            f"({saved['data']['source']}, {saved['data']['clips']} clips)")
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.order.bit_generator.state = saved["order"]
        self.history = History(**saved["history"])
        self.best_state = saved["best_state"]
        self.best_esr = saved["best_esr"]
        self.best_epoch = saved["best_epoch"]
        self.seconds = saved["seconds"]
        self.steps = saved.get("steps", 0)

    def metadata(self):
        """What the exported model file records about its training."""
        per_clip, pooled = self.validate()
        return {"sample_rate": int(self.data.sample_rate), "gain": self.data.gain,
                "inputs": ["audio", *self.data.knob_names],
                "validation_esr": pooled, "validation_esr_mean": float(np.mean(per_clip)),
                "data": self.data.source, "clips": {"train": len(self.train_index),
                                                    "validation": len(self.validation_index)},
                "validation_clips": [self.data.names[i] for i in self.validation_index],
                "score_start": self.data.score_start, "epochs": len(self.history.epoch),
                "best_epoch": self.best_epoch, "training_seconds": round(self.seconds, 1),
                "config": asdict(self.config),
                "history": {k: [float(f"{v:.5g}") for v in values]
                            for k, values in asdict(self.history).items()}}
