"""Contrastive losses with global-batch negatives across processes: run under `accelerate launch` (2 CPU
processes on gloo) by tests/nn/test_distributed_contrastive.py, which compares with one process.

usage: accelerate launch --multi_gpu --num_processes 2 distributed_contrastive_script.py OUT_DIR
Each process takes its slice of every global batch from `cases()`; the main process writes, per case, the
loss and the (DDP-averaged) gradients to OUT_DIR/<case>.safetensors. Also usable as a module: `cases()`
builds the same models and batches in a single process.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

GLOBAL_BATCH = 8


def mulan_case(loss: str):
    from soundweave.training.mulan import build_mulan

    torch.manual_seed(0)
    model = build_mulan("scratch", "tiny", 16000, loss=loss, max_seconds=2.0)
    if loss == "sigmoid":  # at the SigLIP init (bias -10) the negatives barely count; at 0 they do
        model.contrastive.bias.data.fill_(0.0)
    model.eval()  # no SpecAugment / patch dropout draws: the two runs see the same inputs (gradients still on)
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(GLOBAL_BATCH, 16000, generator=g) * 0.1
    captions = [f"clip {i} with {['piano', 'drums', 'bass', 'flute'][i % 4]}" for i in range(GLOBAL_BATCH)]

    def loss_fn(m, rows: slice):
        return m(audio[rows], raw_texts=captions[rows])

    return model, loss_fn


def aligner_case(symmetric: bool = False):
    from soundweave.training.aligner import AlignerLossConfig, TargetCache, build_aligner, make_step_fn

    torch.manual_seed(0)
    model = build_aligner("tiny", 32, 6)
    model.train()  # the training path (eval mode runs a fused inference path); the tiny preset has no dropout
    g = torch.Generator().manual_seed(2)
    cache = TargetCache([f"caption {i}" for i in range(20)], torch.randn(20, 6, 32, generator=g))
    features = torch.randn(GLOBAL_BATCH, 40, 160, generator=g)
    rows = torch.tensor([0, 1, 2, 3, 4, 5, 2, 7])  # a caption shared by two clips (one row, never its own negative)
    step = make_step_fn(cache, AlignerLossConfig(num_negatives=6, symmetric=symmetric), seed=0)

    def loss_fn(m, sl: slice):
        batch = {"features": features[sl], "attention_mask": torch.ones(features[sl].shape[:2], dtype=torch.long),
                 "target_rows": rows[sl]}
        return step(m, batch)[0]

    return model, loss_fn


def cases():
    return {"mulan_infonce": lambda: mulan_case("infonce"), "mulan_decoupled": lambda: mulan_case("decoupled"),
            "mulan_sigmoid": lambda: mulan_case("sigmoid"), "aligner": lambda: aligner_case(False)}


def loss_and_grads(model, loss, names):
    grads = {f"grad.{n}": p.grad.detach().clone() for n, p in names if p.grad is not None}
    return {"loss": loss.detach().reshape(1), **grads}


if __name__ == "__main__":
    from accelerate import Accelerator

    out = Path(sys.argv[1])
    acc = Accelerator(cpu=True)
    per = GLOBAL_BATCH // acc.num_processes
    mine = slice(acc.process_index * per, (acc.process_index + 1) * per)
    for name, make in cases().items():
        model, loss_fn = make()
        names = list(model.named_parameters())
        wrapped = acc.prepare(model)
        loss = loss_fn(wrapped, mine)
        acc.backward(loss)
        if acc.is_main_process:
            save_file(loss_and_grads(model, loss, names), str(out / f"{name}.safetensors"))
        acc.wait_for_everyone()
    print(f"done on {acc.num_processes} processes")
    torch.distributed.destroy_process_group()  # not left to interpreter teardown (gloo can abort there)
