"""Global-batch negatives across processes: 2 CPU processes (gloo, `accelerate launch`) give the loss and the
gradients of one process with the doubled batch, for MuLaN's three losses and the aligner's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from soundweave.nn.distributed import gather_no_grad, gather_with_grad, world_size
from tests.nn.distributed_contrastive_script import GLOBAL_BATCH, cases, loss_and_grads

SCRIPT = Path(__file__).with_name("distributed_contrastive_script.py")
ROOT = Path(__file__).parents[2]


def launch(script: Path, *args, processes: int = 2, port: int = 29531, timeout: int = 300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(port)]
    return subprocess.run([*launcher, str(script), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_single_process_gather_is_the_identity():
    assert world_size() == 1
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x and gather_no_grad(x) is x


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run = launch(SCRIPT, out)
    assert run.returncode == 0, run.stderr[-4000:]
    return out


@pytest.mark.parametrize("case", list(cases()))
def test_two_processes_equal_one_process_with_the_doubled_batch(two_process_results, case):
    model, loss_fn = cases()[case]()
    loss = loss_fn(model, slice(0, GLOBAL_BATCH))
    loss.backward()
    reference = loss_and_grads(model, loss, list(model.named_parameters()))
    got = load_file(str(two_process_results / f"{case}.safetensors"))
    assert set(got) == set(reference)
    # same loss: each process's contrastive problem is the whole global batch of 8, not its own 4
    torch.testing.assert_close(got["loss"], reference["loss"], atol=1e-5, rtol=1e-5)
    for name, grad in reference.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=1e-4, msg=f"{case}: {name}")
    # and that is not what a per-process contrastive problem would give
    model2, loss_fn2 = cases()[case]()
    half = 0.5 * (loss_fn2(model2, slice(0, GLOBAL_BATCH // 2)) + loss_fn2(model2, slice(GLOBAL_BATCH // 2, None)))
    assert abs(float(half.detach()) - float(reference["loss"])) > 1e-3
