"""`python -m tests.training.stalled_checkpoint ARGS...` runs `soundweave ARGS...` with its first training
checkpoint write stalled half-way: model.safetensors is cut to half its bytes, the path is written to the file
named by $SOUNDWEAVE_STALL_MARK, and the process sleeps, so a test can SIGKILL it in the middle of the write."""

import os
import sys
import time
from pathlib import Path

import soundweave.training.trainer as trainer_module
from soundweave.cli import main

_real_save_model = trainer_module.save_model


def _stalled_save_model(model, filename, *args, **kwargs):
    _real_save_model(model, filename, *args, **kwargs)
    size = os.path.getsize(filename)
    with open(filename, "r+b") as f:
        f.truncate(size // 2)
    # written whole, then renamed into place: the test polls for the mark and must never read it half-written
    mark = Path(os.environ["SOUNDWEAVE_STALL_MARK"])
    partial = mark.with_name(mark.name + ".partial")
    partial.write_text(str(filename))
    partial.replace(mark)
    time.sleep(300)  # the test kills the process here


trainer_module.save_model = _stalled_save_model

if __name__ == "__main__":
    main(sys.argv[1:])
