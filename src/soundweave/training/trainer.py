"""The one trainer: Accelerate underneath, the same loop for every soundweave model.

    trainer = Trainer(model, dataset, step_fn, TrainerConfig(out_dir="runs/x", max_steps=500),
                      collate_fn=collate, eval_fn=evaluate)
    result = trainer.fit(resume=True)

`step_fn(model, batch) -> loss` or `(loss, {name: float})` computes one micro-batch's loss. The trainer
does the rest: data order (a fixed shuffle per epoch, so a resumed run sees the batches the uninterrupted
run would have), gradient accumulation, clipping, bf16/fp16 autocast, AdamW with warm-up + cosine
decay, EMA, periodic `eval_fn(model, step) -> {metric: float}` (on the EMA weights when EMA is on),
`log.csv`/`eval.csv`, a progress bar with loss and speed, and atomic checkpoints every `save_every`
steps. A step is one optimizer update (= `grad_accum` micro-batches).

Faults: a run killed at any moment resumes (`fit(resume=True)`) to exactly the losses and weights of an
uninterrupted run (the logs are cut back to the checkpoint's step; a half-written checkpoint is never
loaded). A checkpoint that cannot be written (disk full) raises `CheckpointWriteError` naming the folder and
leaves the previous checkpoint as it was. A NaN/Inf loss or gradient norm stops the run by default
(`nonfinite="stop"`: `NonFiniteLossError` with the step number, before the bad step changes the weights and
without saving, so the newest checkpoint is the last good one); `nonfinite="skip"` drops such micro-batches'
updates instead, and still stops after `max_nonfinite_skips` of them in a row.

Under `accelerate launch --multi_gpu --num_processes N` (without GPUs it starts N CPU processes on gloo) it
runs unchanged: each process gets a different shard of
every global batch and gradients are averaged.

Streaming data: `train_dataset` may be a `torch.utils.data.IterableDataset` (`soundweave.data.shards`:
WebDataset shards, HF streaming) that splits itself across processes and workers. Its loader then gives each
process batches of `batch_size / N` (not passed through `accelerator.prepare`, which would make every process
read every sample); an epoch ends for all processes when the first one runs out (no process waits for a
batch that never comes); `set_epoch(epoch)` is called at each epoch and, on resume,
`skip_batches(batches_done_in_epoch, per_process_batch)` so the stream continues where it was.

FSDP (`accelerate launch --config_file configs/accelerate/8gpu-fsdp.yaml`): checkpoints hold the full (gathered)
weights and optimizer state (torch.distributed.checkpoint's state-dict API), so they load under any process count
or without FSDP; `final_model()` gives the full-weight model to publish; evaluation runs on every process (an FSDP
forward is collective); EMA is not supported with FSDP (a clear error). Accelerate falls back to DDP on CPUs, so
this path is only exercised on a plain module here (tests/training/test_trainer_fsdp_path.py).
"""

from __future__ import annotations

import atexit
import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.data_loader import skip_first_batches
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DataLoaderConfiguration, DistributedType, broadcast_object_list, send_to_device, set_seed
from safetensors.torch import save_file, save_model
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..errors import CheckpointError, CheckpointWriteError, ConfigError, DataError, NonFiniteLossError
from ..runtime import warn_if_slow_bf16
from .checkpoint import (
    EMA_NAME,
    MODEL_NAME,
    STATE_NAME,
    begin_checkpoint,
    check_counters,
    check_like,
    check_optimizer_state,
    check_rng_state,
    commit_checkpoint,
    discard_partial,
    latest_checkpoint,
    load_state,
    read_weights,
    rng_state,
    set_rng_state,
)
from .data_order import EpochSampler, SeededItems
from .ema import EMA
from .run_log import CsvLog, Progress
from .schedule import SCHEDULES, make_scheduler

StepFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[nn.Module, int], dict[str, float]]

MIXED_PRECISION = {"no": "no", "fp32": "no", "bf16": "bf16", "fp16": "fp16"}
NONFINITE = ("stop", "skip")


@dataclass
class TrainerConfig:
    out_dir: str = "runs/train"
    max_steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    ema_decay: float | None = None
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    keep_checkpoints: int = 2
    seed: int = 0
    num_workers: int = 0
    drop_last: bool = True
    progress: bool = True
    cpu: bool = False
    nonfinite: str = "stop"  # NaN/Inf loss or gradient norm: "stop" (raise, keep the last good checkpoint) | "skip"
    max_nonfinite_skips: int = 10  # with "skip": stop anyway after this many non-finite micro-batches in a row

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"mixed_precision must be one of {sorted(MIXED_PRECISION)}, got {self.mixed_precision!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        for name in ("max_steps", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.nonfinite not in NONFINITE:
            raise ConfigError(f"nonfinite must be one of {NONFINITE}, got {self.nonfinite!r}")
        if self.max_nonfinite_skips < 1:
            raise ConfigError(f"max_nonfinite_skips must be >= 1, got {self.max_nonfinite_skips}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay}")


@dataclass
class TrainResult:
    step: int
    losses: list[float] = field(default_factory=list)  # mean loss of every optimizer step run in this call
    evals: list[dict[str, float]] = field(default_factory=list)
    elapsed: float = 0.0
    checkpoint: Path | None = None
    skipped: list[int] = field(default_factory=list)  # steps in which a non-finite micro-batch was skipped

    @property
    def last_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


def _destroy_process_group() -> None:
    """Tear the process group down before the interpreter exits: a gloo/NCCL group left to the interpreter's
    teardown can abort a process that has finished its work ("terminate called without an active exception")."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.destroy_process_group()
        except Exception:  # pragma: no cover - best effort at exit
            pass


class Trainer:
    def __init__(self, model: nn.Module, train_dataset: Dataset, step_fn: StepFn, config: TrainerConfig,
                 *, collate_fn: Callable | None = None, eval_fn: EvalFn | None = None,
                 optimizer: torch.optim.Optimizer | None = None, parameters=None,
                 on_save: Callable[[nn.Module, Path], None] | None = None):
        self.config = config
        self.step_fn, self.eval_fn, self.on_save = step_fn, eval_fn, on_save
        self.streaming = isinstance(train_dataset, IterableDataset)
        self.train_dataset = train_dataset
        if not self.streaming and len(train_dataset) == 0:
            raise ConfigError("the training dataset is empty")
        # Accelerate keeps its settings in process-wide singletons; start each Trainer from a clean slate so
        # one run's precision/accumulation never leaks into the next (one Trainer at a time per process).
        AcceleratorState._reset_state()
        GradientState._reset_state()
        # global batches are split across processes (split_batches keeps the global batch size fixed)
        # launched as several processes on a machine without GPUs: Accelerate only forms the (gloo) process group
        # when told it runs on the CPU; otherwise every process would train alone
        several = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
        cpu = config.cpu or (several and not torch.cuda.is_available())
        self.accelerator = Accelerator(mixed_precision=MIXED_PRECISION[config.mixed_precision],
                                       gradient_accumulation_steps=config.grad_accum, cpu=cpu,
                                       dataloader_config=DataLoaderConfiguration(split_batches=True))
        if config.mixed_precision == "bf16":
            warn_if_slow_bf16(self.accelerator.device, "bf16")
        self.fsdp = self.accelerator.distributed_type == DistributedType.FSDP
        if self.fsdp and config.ema_decay:
            raise ConfigError("EMA is not supported under FSDP (the EMA copy would need its own sharding); "
                              "set ema_decay=None (--ema 0) or launch with a DDP config")
        if self.accelerator.num_processes > 1:
            atexit.unregister(_destroy_process_group)  # once per process, however many Trainers it builds
            atexit.register(_destroy_process_group)
        # each process its own random stream (seed + process index; one process: the seed itself), so the masks,
        # noise levels and dropout of the halves of a global batch are independent draws, as in one process
        set_seed(config.seed, device_specific=True)
        self.out_dir = Path(config.out_dir)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "trainer_config.json").write_text(json.dumps(asdict(config), indent=2))
        per_process = max(1, config.batch_size // self.accelerator.num_processes)
        self.per_process_batch = per_process
        if self.streaming:
            self.sampler = None
            loader = DataLoader(train_dataset, batch_size=per_process, collate_fn=collate_fn,
                                num_workers=config.num_workers, drop_last=True,
                                generator=torch.Generator().manual_seed(config.seed))  # as below
        else:
            self.sampler = EpochSampler(len(train_dataset), seed=config.seed)
            if len(train_dataset) < per_process * self.accelerator.num_processes and config.drop_last:
                raise ConfigError(f"dataset has {len(train_dataset)} items, fewer than one batch of "
                                  f"{config.batch_size}")
            loader = DataLoader(SeededItems(train_dataset, self.sampler),
                                batch_size=per_process * self.accelerator.num_processes,
                                sampler=self.sampler, collate_fn=collate_fn, num_workers=config.num_workers,
                                drop_last=config.drop_last,
                                # its own generator: creating an iterator then never draws from the global RNG,
                                # which keeps a resumed run's dropout/noise draws identical to the original's
                                generator=torch.Generator().manual_seed(config.seed))
        params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters")
        optimizer = optimizer or torch.optim.AdamW(params, lr=config.lr, betas=config.betas,
                                                   weight_decay=config.weight_decay)
        self.scheduler = make_scheduler(optimizer, config.warmup_steps, config.max_steps, config.lr_schedule,
                                        config.min_lr_ratio)
        # the publishable full-weight model under FSDP (filled by final_model); a CPU copy made before sharding
        self._template = copy.deepcopy(model).cpu() if self.fsdp else None
        if self.streaming:
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
            self.loader = loader
        else:
            self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.ema = EMA(self.unwrapped_model, config.ema_decay) if config.ema_decay else None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def main_value(self, value: Any) -> Any:
        """The main process's `value`, on every process: decisions that must agree (a wall-time budget, a chunk
        size) are taken from it so no process waits in a collective the others never reach."""
        if self.accelerator.num_processes == 1:
            return value
        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def run_on_main(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run `fn` (e.g. saving the final model) on the main process only; every process waits for it."""
        out = fn(*args, **kwargs) if self.is_main else None
        self.accelerator.wait_for_everyone()
        return out

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and publish: the EMA copy when EMA is on, else the trained model (under FSDP the
        sharded model itself, whose forward every process runs; publish `final_model()`)."""
        if self.fsdp:
            return self.model
        return self.ema.ema_model if self.ema else self.unwrapped_model

    def final_model(self) -> nn.Module:
        """The model to save at the end of a run, with full weights (`eval_model`, except under FSDP, where the
        shards are gathered into an unsharded CPU copy: call it on every process)."""
        if not self.fsdp:
            return self.eval_model
        weights, _ = self._full_state(optimizer=False)
        if self.is_main:
            self._template.load_state_dict(weights)
        return self._template

    def _full_state(self, optimizer: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
        """Full model weights and optimizer state on the CPU (a collective under FSDP: call on every process)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = get_model_state_dict(self.model, options=options)
        optim = get_optimizer_state_dict(self.model, self.optimizer.optimizer, options=options) if optimizer else None
        return weights, optim

    def _load_full_state(self, weights: dict[str, torch.Tensor], optim: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, weights, options=options)
        set_optimizer_state_dict(self.model, self.optimizer.optimizer, optim, options=options)

    @property
    def steps_per_epoch(self) -> int | None:
        if self.streaming:
            return None  # a stream's length is not known in advance
        return max(1, len(self.loader) // self.config.grad_accum)

    def _epoch_batches(self):
        """This epoch's batches: the prepared loader (skipping into a resumed epoch), or for a stream its own
        loader, stopped on every process as soon as one process has no further batch."""
        if not self.streaming:
            self.sampler.use_epoch(self.epoch)
            yield from (skip_first_batches(self.loader, self.batch_in_epoch) if self.batch_in_epoch else self.loader)
            return
        acc, data = self.accelerator, self.train_dataset
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)
        if hasattr(data, "skip_batches"):
            data.skip_batches(self.batch_in_epoch, self.per_process_batch)
        elif self.batch_in_epoch:
            raise CheckpointError("this stream cannot skip ahead (no skip_batches), so it cannot resume mid-epoch")
        # worker seeds from (seed, epoch), not from how many iterators came before (so they survive a resume; with
        # workers a resumed epoch has the same clips in the same order, but random crops are redrawn)
        self.loader.generator.manual_seed(self.config.seed * 1_000_003 + self.epoch)
        iterator = iter(self.loader)
        while True:
            batch = next(iterator, None)
            if acc.num_processes > 1:
                have = torch.tensor([0 if batch is None else 1], device=acc.device)
                torch.distributed.all_reduce(have, op=torch.distributed.ReduceOp.MIN)
                if int(have) == 0:
                    return
            elif batch is None:
                return
            yield send_to_device(batch, acc.device)

    # -- checkpoints --------------------------------------------------------------------------------
    def _any_process(self, flag: bool) -> bool:
        """True on every process when `flag` is true on any (all must take the same branch around collectives)."""
        if self.accelerator.num_processes == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor(float(flag), device=self.accelerator.device), "sum") > 0)

    def _write_failed(self, error: OSError | None, tmp: Path) -> None:
        """Raise CheckpointWriteError on every process if any process failed to write its part."""
        if not self._any_process(error is not None):
            return
        if self.is_main:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(self.out_dir)
        kept = f"the previous checkpoint {str(previous)!r} is intact" if previous else "no earlier checkpoint exists"
        reason = f"{error.strerror or error}" if error is not None else "another process failed to write its part"
        raise CheckpointWriteError(
            f"could not write the step-{self.step} checkpoint into {str(tmp.parent)!r}: {reason}; {kept}. "
            "Free space there (or choose another output folder) and resume with --resume / fit(resume=True)")

    def save_checkpoint(self) -> Path:
        acc = self.accelerator
        tmp = self.out_dir / "checkpoints" / f".tmp-step-{self.step:08d}"
        full = self._full_state() if self.fsdp else None  # FSDP: gathered on every process, written by the main one
        acc.wait_for_everyone()
        error = None
        if self.is_main:
            try:
                tmp = begin_checkpoint(self.out_dir, self.step)
                if full is not None:
                    save_file({k: v.contiguous().clone() for k, v in full[0].items()}, str(tmp / MODEL_NAME))
                else:
                    save_model(self.unwrapped_model, str(tmp / MODEL_NAME))
                if self.ema:
                    save_model(self.ema.ema_model, str(tmp / EMA_NAME))
                torch.save({"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                            "optimizer": full[1] if full is not None else self.optimizer.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict(), "full_state": full is not None,
                            "num_processes": acc.num_processes}, tmp / STATE_NAME)
            except OSError as exc:  # ENOSPC, EROFS, EACCES...
                error = exc
        self._write_failed(error, tmp)
        try:
            torch.save(rng_state(), tmp / f"rng_{acc.process_index}.pt")
        except OSError as exc:
            error = exc
        self._write_failed(error, tmp)
        final = tmp
        if self.is_main:
            try:
                final = commit_checkpoint(tmp, self.out_dir, self.step, self.config.keep_checkpoints)
            except OSError as exc:
                error = exc
        self._write_failed(error, tmp)
        if self.is_main and self.on_save is not None:
            self.on_save(self.eval_model, final)
        acc.wait_for_everyone()
        return final

    def load_checkpoint(self, folder: Path) -> None:
        """Restore a checkpoint. Every part is read and checked against this run (shapes, types, finite values)
        before any of it is applied; a damaged or foreign checkpoint is a CheckpointError naming the folder."""
        folder = Path(folder)
        state = load_state(folder)
        if not isinstance(state, dict):
            raise CheckpointError(f"training state in {str(folder)!r} is not a dict")
        counters = check_counters(state, folder)
        weights = read_weights(folder / MODEL_NAME, self.unwrapped_model)
        ema_weights = (read_weights(folder / EMA_NAME, self.ema.ema_model)
                       if self.ema and (folder / EMA_NAME).is_file() else None)
        if not state.get("full_state"):  # a full (FSDP) state is keyed by parameter name: _load_full_state maps it
            check_optimizer_state(state.get("optimizer"), self.optimizer.optimizer, folder)
        check_like(state.get("scheduler"), self.scheduler.state_dict(), folder, "scheduler state")
        rng_file = folder / f"rng_{self.accelerator.process_index}.pt"
        rng = None
        if rng_file.is_file():
            try:
                rng = torch.load(rng_file, weights_only=True)
            except Exception as exc:  # not a tensors-only file
                raise CheckpointError(f"could not read the RNG state {str(rng_file)!r}: {exc}") from exc
            check_rng_state(rng, rng_file)
        try:
            if self.fsdp and not state.get("full_state"):
                raise CheckpointError(f"checkpoint {str(folder)!r} was written without FSDP; its optimizer state "
                                      "is per parameter index, not by name - resume it with a DDP config")
            if state.get("full_state"):  # written under FSDP (resumed with or without it): the weights read above
                self._load_full_state(weights, state["optimizer"])
            else:
                self.unwrapped_model.load_state_dict(weights, strict=False)
                self.optimizer.optimizer.load_state_dict(state["optimizer"])
            if ema_weights is not None:
                self.ema.ema_model.load_state_dict(ema_weights, strict=False)
            self.scheduler.load_state_dict(state["scheduler"])
            if rng is not None:
                set_rng_state(rng)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(f"checkpoint {str(folder)!r} does not match this model/optimizer: {exc}") from exc
        self.step, self.epoch, self.batch_in_epoch = counters

    # -- the loop -------------------------------------------------------------------------------------
    def _last_good(self) -> str:
        last = latest_checkpoint(self.out_dir)
        return (f"The last good checkpoint is {str(last)!r} (resume from it with --resume)." if last else
                "No checkpoint was written yet.")

    def _nonfinite(self, what: str, result: TrainResult) -> None:
        """A non-finite micro-batch of step self.step + 1: stop (the default) or note it as skipped."""
        step = self.step + 1
        if self.config.nonfinite == "stop":
            raise NonFiniteLossError(
                f"{what} at step {step} (epoch {self.epoch}, batch {self.batch_in_epoch}); the run stopped before "
                f"that update and saved nothing. {self._last_good()} Lower the learning rate, check the data, or "
                "skip such steps (TrainerConfig(nonfinite='skip')).")
        if not result.skipped or result.skipped[-1] != step:
            result.skipped.append(step)

    def _split(self, out) -> tuple[torch.Tensor, dict[str, float]]:
        if isinstance(out, tuple):
            loss, logs = out[0], (out[1] if len(out) > 1 and isinstance(out[1], dict) else {})
        else:
            loss, logs = out, {}
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ConfigError("step_fn must return a scalar loss tensor (or (loss, dict))")
        return loss, {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, torch.Tensor))}

    def evaluate(self) -> dict[str, float]:
        """`eval_fn` on the main process (the others return {}: they would compute the same figures)."""
        if self.eval_fn is None or not (self.is_main or self.fsdp):  # FSDP: every process runs the forward
            return {}
        model = self.eval_model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            metrics = self.eval_fn(model, self.step)
        model.train(was_training)
        return {k: float(v) for k, v in metrics.items()}

    def fit(self, resume: bool | str | Path = False, stop_at: int | None = None) -> TrainResult:
        """Train until `max_steps`. `resume=True` continues from the newest checkpoint in out_dir (if any);
        a path resumes from that checkpoint folder. `stop_at` ends early at that step (the schedule still
        spans `max_steps`), as an interruption would; a later `fit(resume=True)` continues from there."""
        cfg, acc = self.config, self.accelerator
        if resume:
            folder = latest_checkpoint(self.out_dir) if resume is True else Path(resume)
            if folder is not None:  # resume=True with no checkpoint yet starts from scratch
                self.load_checkpoint(folder)
                if self.is_main and cfg.progress:
                    print(f"resumed from {folder} at step {self.step}")
        result = TrainResult(step=self.step)
        train_log = CsvLog(self.out_dir / "log.csv") if self.is_main else None
        eval_log = CsvLog(self.out_dir / "eval.csv") if self.is_main else None
        if self.is_main:
            if resume:  # the logs end where the checkpoint does; the steps after it are run (and logged) again
                train_log.cut_after(self.step)
                eval_log.cut_after(self.step)
            discard_partial(self.out_dir)
        nonfinite_run = 0
        progress = Progress(cfg.max_steps, self.step, enabled=cfg.progress and self.is_main)
        start = time.perf_counter()
        window_t, window_samples = time.perf_counter(), 0
        micro_losses: list[float] = []
        micro_logs: dict[str, list[float]] = {}
        self.model.train()
        with progress:
            end = min(cfg.max_steps, stop_at or cfg.max_steps)
            while self.step < end:
                finished_epoch, batches_at_start = True, self.batch_in_epoch
                for batch in self._epoch_batches():
                    with acc.accumulate(self.model):
                        with acc.autocast():
                            loss, logs = self._split(self.step_fn(self.model, batch))
                        bad = self._any_process(not bool(torch.isfinite(loss.detach())))
                        if bad:
                            self._nonfinite(f"loss is {float(loss.detach())}", result)
                        else:
                            acc.backward(loss)
                        if acc.sync_gradients and cfg.max_grad_norm:
                            norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                            # fp16's grad scaler skips overflowing steps by itself
                            if (not bad and cfg.mixed_precision != "fp16" and norm is not None
                                    and self._any_process(not bool(torch.isfinite(torch.as_tensor(norm))))):
                                bad = True
                                self._nonfinite(f"gradient norm is {float(norm)}", result)
                                self.optimizer.zero_grad(set_to_none=True)
                        self.optimizer.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    self.batch_in_epoch += 1
                    nonfinite_run = nonfinite_run + 1 if bad else 0
                    if nonfinite_run >= cfg.max_nonfinite_skips:
                        raise NonFiniteLossError(
                            f"{nonfinite_run} non-finite micro-batches in a row up to step {self.step + 1}; "
                            f"stopped. {self._last_good()}")
                    if not bad:  # a skipped micro-batch adds nothing to the step's loss and logs
                        micro_losses.append(float(loss.detach()))
                        for k, v in logs.items():
                            micro_logs.setdefault(k, []).append(v)
                    window_samples += cfg.batch_size
                    if not acc.sync_gradients:
                        continue
                    self.scheduler.step()
                    self.step += 1
                    if self.ema:
                        self.ema.update(self.unwrapped_model, self.step)
                    mean = sum(micro_losses) / len(micro_losses) if micro_losses else math.nan
                    step_loss = float(acc.reduce(torch.tensor(mean), "mean"))
                    result.losses.append(step_loss)
                    breakdown = {k: sum(v) / len(v) for k, v in micro_logs.items()}
                    micro_losses, micro_logs = [], {}
                    now = time.perf_counter()
                    speed = window_samples / max(now - window_t, 1e-9)
                    progress.update(self.step, step_loss, speed)
                    if self.is_main and (self.step % max(1, cfg.log_every) == 0 or self.step == cfg.max_steps):
                        train_log.write({"step": self.step, "epoch": self.epoch, "loss": round(step_loss, 6),
                                         "lr": self.scheduler.get_last_lr()[0], "samples_per_s": round(speed, 3),
                                         "elapsed_s": round(now - start, 3),
                                         **{k: round(v, 6) for k, v in breakdown.items()}})
                        window_t, window_samples = now, 0
                    if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.max_steps):
                        metrics = self.evaluate()
                        if metrics:
                            result.evals.append({"step": self.step, **metrics})
                            if self.is_main:
                                eval_log.write({"step": self.step, "elapsed_s": round(now - start, 3), **metrics})
                                progress.note(self.step, metrics)
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        result.checkpoint = self.save_checkpoint()
                    if self.step >= end:
                        finished_epoch = False
                        break
                if finished_epoch:
                    if self.streaming and self.batch_in_epoch == batches_at_start == 0:
                        raise DataError(f"the training stream gave no batch of {self.per_process_batch} in epoch "
                                        f"{self.epoch} (fewer clips than one batch per process?)")
                    self.epoch += 1
                    self.batch_in_epoch = 0
        if cfg.save_every and (result.checkpoint is None or self.step % cfg.save_every):
            result.checkpoint = self.save_checkpoint()
        result.step = self.step
        result.elapsed = time.perf_counter() - start
        return result
