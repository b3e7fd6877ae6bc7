"""A tiny training run used by the trainer tests, also under `accelerate launch` (several processes).

usage: python trainer_script.py OUT_DIR MAX_STEPS STOP_AT [grad_accum] [mixed_precision] [batch_size]
Prints one JSON line with the losses of this call (main process only).
"""

import json
import sys

import torch
from torch.utils.data import TensorDataset

from soundweave.training import Trainer, TrainerConfig


def build(out_dir, max_steps, grad_accum=1, precision="no", batch_size=8, dropout=0.1, ema=0.9, save_every=5):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5]) + 0.1
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(dropout), torch.nn.Linear(16, 1))

    def step(m, batch):
        xb, yb = batch
        return torch.nn.functional.mse_loss(m(xb).squeeze(-1).float(), yb), {"mean_target": float(yb.mean())}

    def evaluate(m, step_number):
        return {"mse": float(torch.nn.functional.mse_loss(m(x).squeeze(-1), y))}

    cfg = TrainerConfig(out_dir=str(out_dir), max_steps=max_steps, batch_size=batch_size, lr=5e-2,
                        save_every=save_every, ema_decay=ema, progress=False, grad_accum=grad_accum,
                        mixed_precision=precision, eval_every=5, log_every=1, cpu=True)
    return Trainer(model, TensorDataset(x, y), step, cfg, eval_fn=evaluate)


if __name__ == "__main__":
    out, max_steps, stop_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    accum = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    precision = sys.argv[5] if len(sys.argv) > 5 else "no"
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 8
    trainer = build(out, max_steps, accum, precision, batch)
    result = trainer.fit(resume=True, stop_at=stop_at)
    if trainer.is_main:
        print(json.dumps({"step": result.step, "losses": result.losses,
                          "processes": trainer.accelerator.num_processes}))
