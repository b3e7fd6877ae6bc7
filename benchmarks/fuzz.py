"""Coverage-guided fuzzing of everything soundweave reads from strangers. Prints JSON.

    python3 tasks.py bench fuzz                       # every target, the default number of executions
    .venv/bin/python benchmarks/fuzz.py --runs audio_bytes=20000,cli=5000 --out fuzz-out

Fuzzer: atheris (Google's libFuzzer for Python). It is coverage-guided - soundweave's own modules are
instrumented, so inputs that reach new branches of the parsers are kept and mutated further - and libFuzzer
itself enforces two of the failure rules: `-timeout=5` turns an input that runs over 5 s into a reported hang and
`-rss_limit_mb` turns unbounded memory into a reported out-of-memory, and a crash of a native library (libsndfile,
mpg123, safetensors, torch) is caught as a deadly signal. hypothesis would generate structured values well but
has no coverage feedback over bytes, no hang or memory watchdog, and runs far fewer executions per second.

Targets (each in its own process, restarted after a hang, crash or OOM until its executions are done):
  audio_bytes      `audio.load`/`audio.info` on arbitrary bytes
  audio_files      `audio.load(path, sr=16000)` on mutated real wav / flac / ogg / mp3 files
  manifest         `CaptionedAudioDataset` (+ the first item) on a folder whose captions.jsonl is mutated lines
  pretrained_config   `load_pretrained` on a model folder with a mutated config.json
  pretrained_weights  `load_pretrained` on a model folder with a truncated or mutated model.safetensors
  resume           a Trainer resuming (one step) from a checkpoint with one file mutated or truncated
  cli              the CLI's argument parsing on random argument lists (+ running the cheap commands)

The only acceptable outcomes are success or a `SoundweaveError` whose message names the input (the CLI: also a
usage error, exit status 2, naming the option). Anything else is a failure; each distinct one (exception type
and the soundweave line it came from) is reported once with its input saved under OUT/failures/TARGET/.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "fuzz_inputs" / "seeds"
DEFAULT_RUNS = {"audio_bytes": 35000, "audio_files": 30000, "manifest": 12000, "pretrained_config": 8000,
                "pretrained_weights": 8000, "resume": 4000, "cli": 12000}
MAX_LEN = {"audio_bytes": 4096, "audio_files": 20000, "manifest": 2048, "pretrained_config": 4096,
           "pretrained_weights": 40000, "resume": 40000, "cli": 256}
TIMEOUT_S, RSS_LIMIT_MB = 5, 2048
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


# -- structure-aware mutation of JSON (configs, manifest lines), mixed with libFuzzer's byte mutations ---------

HOSTILE_VALUES = [0, -1, 1, 2, 3, 7, 2**31, 2**63, 10**12, -10**9, 0.5, -0.0, 1e308, 1e-308, float("nan"),
                  float("inf"), True, False, None, "", "x", "../../etc/passwd", "/etc/passwd", "\u0000", [], [0],
                  [1, 2, 3], [10**9], {}, {"a": 1}, "SoundStream", "MuLaN", "SoundStorm", "SpectralCodec"]


def _mutate_json(value, rng):
    """One random edit somewhere inside a parsed JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value, key=str))
        roll = rng.random()
        if roll < 0.1:
            value.pop(key)
        elif roll < 0.2:
            value[rng.choice(["_class", "dim", "depth", "path", "tags", "split", "extra"])] = copy.deepcopy(
                rng.choice(HOSTILE_VALUES))
        else:
            value[key] = _mutate_json(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        value[i] = _mutate_json(value[i], rng)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and rng.random() < 0.5:
        return rng.choice([value * 1000, -value, value + 1, value - 1, value * 0.5, 0, value * 10**6])
    return copy.deepcopy(rng.choice(HOSTILE_VALUES))


def json_mutator(data: bytes, max_size: int, seed: int, per_line: bool = False) -> bytes:
    import random

    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.3:
        return atheris.Mutate(data, max_size)
    lines = data.split(b"\n") if per_line else [data]
    i = rng.randrange(len(lines))
    try:
        value = json.loads(lines[i])
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    for _ in range(rng.randint(1, 3)):
        value = _mutate_json(value, rng)
    try:
        lines[i] = json.dumps(value, allow_nan=True).encode()
    except (ValueError, TypeError, RecursionError):
        return atheris.Mutate(data, max_size)
    return b"\n".join(lines)[:max_size]


# -- targets: each is a class with seeds() -> {name: bytes}, run(data) and names_input(message) ----------------

class AudioBytes:
    def __init__(self, work: Path):
        from soundweave.audio import info, load

        self.info, self.load = info, load

    def seeds(self):
        return {"empty-ish": b"RIFF", "tone.wav": (SEEDS / "tone.wav").read_bytes()[:4096]}

    def run(self, data: bytes):
        self.info(data)
        self.load(data)

    def names_input(self, message: str, data: bytes) -> bool:
        return f"<{len(data)} bytes>" in message or "audio bytes are empty" in message


class AudioFiles:
    def __init__(self, work: Path):
        from soundweave.audio import load

        self.load, self.path = load, work / "input-audio"

    def seeds(self):
        return {p.name: p.read_bytes() for p in sorted(SEEDS.iterdir()) if p.suffix in AUDIO_SUFFIXES}

    def run(self, data: bytes):
        self.path.write_bytes(data)
        self.load(self.path, sr=16000, mono=bool(len(data) % 2))

    def names_input(self, message: str, data: bytes) -> bool:
        return str(self.path) in message


class Manifest:
    def __init__(self, work: Path):
        import shutil

        from soundweave.data import CaptionedAudioDataset

        self.dataset = CaptionedAudioDataset
        self.folder = work / "corpus"
        (self.folder / "audio").mkdir(parents=True, exist_ok=True)
        for p in SEEDS.iterdir():
            if p.suffix in AUDIO_SUFFIXES:
                shutil.copy(p, self.folder / "audio" / p.name)
        self.file = self.folder / "captions.jsonl"

    def seeds(self):
        rows = [{"path": "audio/tone.wav", "caption": "Slow piano chords in F# minor",
                 "tags": {"instrument": "piano", "bpm": 72}, "split": "train"},
                {"path": "audio/stereo.flac", "caption": "bass", "tags": {}, "split": "valid"},
                {"path": "audio/tone.mp3", "caption": "", "split": "train"}]
        return {"three-lines": "".join(json.dumps(r) + "\n" for r in rows).encode(),
                "ogg": (json.dumps({"path": "audio/tone.ogg", "caption": "x", "tags": {"a": "b"}}) + "\n").encode()}

    def mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        return json_mutator(data, max_size, seed, per_line=True)

    def run(self, data: bytes):
        self.file.write_bytes(data)
        ds = self.dataset(self.folder, split=None, sample_rate=16000, seconds=0.1, on_error="raise")
        if len(ds):
            ds[0]

    def names_input(self, message: str, data: bytes) -> bool:
        return str(self.folder) in message


def _tiny_models():
    import torch

    from soundweave import AudioSpectrogramTransformer, MuLaN, SoundStream, TextTransformer

    torch.manual_seed(0)
    codec = SoundStream(sample_rate=16000, channels=4, channel_mults=(1, 2), strides=(4, 5), codebook_dim=8,
                        codebook_size=8, rq_num_quantizers=2, attn_depth=0)
    ast = AudioSpectrogramTransformer(dim=16, depth=1, heads=2, dim_head=8, spec_n_fft=128, spec_win_length=128,
                                      spec_hop_length=64, n_mels=16, patch_size=(8, 8), max_seconds=0.5)
    text = TextTransformer(dim=16, depth=1, heads=2, dim_head=8, num_tokens=300, max_seq_len=8)
    return codec, MuLaN(ast, text, dim_latent=8)


class PretrainedConfig:
    def __init__(self, work: Path):
        from soundweave.models.base import load_pretrained

        self.load = load_pretrained
        codec, mulan = _tiny_models()
        self.folder = codec.save_pretrained(work / "model")
        self.configs = {"soundstream": (self.folder / "config.json").read_bytes(),
                        "mulan": (mulan.save_pretrained(work / "mulan") / "config.json").read_bytes()}

    def seeds(self):
        return dict(self.configs)

    def run(self, data: bytes):
        (self.folder / "config.json").write_bytes(data)
        self.load(self.folder)

    def mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        return json_mutator(data, max_size, seed)

    def names_input(self, message: str, data: bytes) -> bool:
        return str(self.folder) in message


class PretrainedWeights(PretrainedConfig):
    def seeds(self):
        return {"model.safetensors": (self.folder / "model.safetensors").read_bytes()}

    def run(self, data: bytes):
        (self.folder / "model.safetensors").write_bytes(data)
        self.load(self.folder)

    def mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        import atheris

        if seed % 4 == 0 and len(data) > 1:  # a quarter of the time: a truncated file
            return data[: seed % len(data)]
        return atheris.Mutate(data, max_size)


class Resume:
    """A Trainer over a tiny MLP; each input replaces one file of a real checkpoint, then resumes one step."""

    FILES = ("training_state.pt", "rng_0.pt", "model.safetensors", "ema.safetensors")

    def __init__(self, work: Path):
        import shutil

        import torch
        from torch.utils.data import TensorDataset

        from soundweave.training import Trainer, TrainerConfig

        torch.manual_seed(0)
        x = torch.randn(16, 4)
        y = x.sum(-1)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
        config = TrainerConfig(out_dir=str(work / "run"), max_steps=1000, batch_size=4, save_every=0, ema_decay=0.9,
                               progress=False, log_every=1000, cpu=True)

        def step(m, batch):
            return torch.nn.functional.mse_loss(m(batch[0]).squeeze(-1), batch[1])

        self.trainer = Trainer(model, TensorDataset(x, y), step, config)
        self.trainer.fit(stop_at=2)
        self.good = self.trainer.save_checkpoint()
        self.folder = work / "mutated"
        shutil.copytree(self.good, self.folder)
        self.originals = {name: (self.good / name).read_bytes() for name in self.FILES}
        self.fresh = {k: v.clone() for k, v in model.state_dict().items()}
        self.shutil = shutil

    def seeds(self):
        return {f"{i}-{name}": bytes([i]) + data for i, (name, data) in enumerate(self.originals.items())}

    def run(self, data: bytes):
        if not data:
            return
        name = self.FILES[data[0] % len(self.FILES)]
        for other, content in self.originals.items():
            (self.folder / other).write_bytes(content)
        (self.folder / "checkpoint.json").unlink(missing_ok=True)  # test what the loader does, not the manifest
        (self.folder / name).write_bytes(data[1:])
        t = self.trainer
        t.load_checkpoint(self.folder)
        t.fit(stop_at=min(t.step + 1, t.config.max_steps))

    def names_input(self, message: str, data: bytes) -> bool:
        # a checkpoint that loads but whose weights make the next loss NaN/Inf stops the resumed run with the step
        # number, which is the designed outcome (NonFiniteLossError), not a message about the file
        return str(self.folder) in message or (" at step " in message and "non-finite" not in message
                                               and message.startswith(("loss is", "gradient norm is")))

    def mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        import atheris

        if seed % 4 == 0 and len(data) > 2:
            return data[: 1 + seed % (len(data) - 1)]
        return atheris.Mutate(data, max_size)


class Cli:
    """Random argument lists: tokens are picked from the real command tree, option names and hostile values."""

    VALUES = ["0", "-1", "1", "3", "1e309", "nan", "-inf", "inf", "0.5", "-0.0", "99999999999999999999", "x", "",
              "auto", "cpu", "cuda:7", "tiny", "base", "a=b", "instrument=piano|bass", "\x00", "../..", "/dev/null",
              "/nonexistent/file.wav", "--", "-", "--help", "1,2,3", "8,16", "0,0", "a,b"]

    def __init__(self, work: Path):
        import typer

        from soundweave.cli import app, main

        self.main = main
        self.root = typer.main.get_command(app)
        self.click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
        self.exit = next(c for c in typer.Exit.__mro__ if c.__name__ == "Exit")
        self.tokens: list[str] = []
        self.commands: list[list[str]] = []
        self._walk(self.root, [])
        wav = work / "in.wav"
        wav.write_bytes((SEEDS / "tone.wav").read_bytes())
        (work / "notes.txt").write_text("not audio")
        self.VALUES = [*self.VALUES, str(wav), str(work / "notes.txt"), str(work), str(work / "out")]
        # commands that do real but cheap work on what they are given: run them, not just parse them
        self.cheap = {("audio", "info"), ("mel", "encode"), ("mel", "decode")}

    def _walk(self, command, prefix):
        self.tokens.extend(prefix[-1:])
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                self._walk(sub, [*prefix, name])
        else:
            self.commands.append(prefix)
            for param in command.params:
                self.tokens.extend(param.opts + param.secondary_opts)

    def seeds(self):
        return {"audio-info": b"\x00\x01\x02\x03", "train-codec": b"\x05\x09\x11\x20\x01\x30\x02"}

    def argv(self, data: bytes) -> list[str]:
        if not data:
            return []
        argv = list(self.commands[data[0] % len(self.commands)])
        pool = self.tokens + self.VALUES
        for b in data[1:24]:
            argv.append(pool[b % len(pool)])
        return argv

    def parse(self, argv: list[str]):
        """Resolve and parse the argument list down to the command (no command runs)."""
        cmd, name, args, ctx = self.root, "soundweave", list(argv), None
        while True:
            ctx = cmd.make_context(name, args, parent=ctx)
            if not hasattr(cmd, "commands"):
                return cmd, ctx
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return cmd, ctx
            name, cmd, args = cmd.resolve_command(ctx, rest)

    def run(self, data: bytes):
        argv = self.argv(data)
        try:
            self.parse(argv)
        except (self.click_error, self.exit):
            return  # a usage error naming the option (status 2), or --help (status 0)
        if tuple(argv[:2]) in self.cheap:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    self.main(argv)
                except SystemExit as exc:
                    if exc.code not in (0, 1, 2, None):
                        raise RuntimeError(f"exit status {exc.code}") from exc

    def names_input(self, message: str, data: bytes) -> bool:
        return True  # parse errors name the option themselves; the cheap commands' errors are audio's


TARGETS = {"audio_bytes": AudioBytes, "audio_files": AudioFiles, "manifest": Manifest,
           "pretrained_config": PretrainedConfig, "pretrained_weights": PretrainedWeights, "resume": Resume,
           "cli": Cli}


# -- the worker: one target under atheris -------------------------------------------------------------------

def _origin(exc: BaseException) -> str:
    """Where an exception came from: the innermost frame in soundweave's code (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/soundweave/" in f.filename and "/benchmarks/" not in f.filename]
    frame = (ours or frames or [None])[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


def worker(target: str, runs: int, out: Path) -> None:
    import atheris

    with atheris.instrument_imports(include=["soundweave"]):
        import soundweave  # noqa: F401
        import soundweave.audio  # noqa: F401
        import soundweave.data  # noqa: F401
        import soundweave.models.base  # noqa: F401
        import soundweave.training  # noqa: F401
        from soundweave.errors import SoundweaveError
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-", dir=os.environ.get("SOUNDWEAVE_FUZZ_TMP")))
    instance = TARGETS[target](work)
    corpus = out / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    for name, data in instance.seeds().items():
        (corpus / f"seed-{name}").write_bytes(data)
    failures = out / "failures" / target
    failures.mkdir(parents=True, exist_ok=True)
    log = out / f"{target}.failures.jsonl"
    seen = {json.loads(line)["key"] for line in log.read_text().splitlines()} if log.is_file() else set()

    def record(key: str, detail: str, data: bytes) -> None:
        if key in seen:
            return
        seen.add(key)
        name = hashlib.sha1(data).hexdigest()[:16]
        (failures / name).write_bytes(data)
        with log.open("a") as f:
            f.write(json.dumps({"key": key, "detail": detail[-1500:], "input": str(failures / name)}) + "\n")

    def one(data: bytes) -> None:
        try:
            instance.run(data)
        except SoundweaveError as exc:
            if not instance.names_input(str(exc), data):
                record(f"unnamed {type(exc).__name__} @ {_origin(exc)}", str(exc), data)
        except Exception as exc:  # a bare library exception: a failure
            record(f"{type(exc).__name__} @ {_origin(exc)}", "".join(traceback.format_exception(exc)), data)

    mutate = getattr(instance, "mutate", None)
    argv = [sys.argv[0], f"-runs={runs}", f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-max_len={MAX_LEN[target]}", f"-artifact_prefix={failures}/", "-print_final_stats=1", str(corpus)]
    atheris.Setup(argv, one, custom_mutator=mutate)
    atheris.Fuzz()


# -- the driver ---------------------------------------------------------------------------------------------

def run_target(target: str, runs: int, out: Path) -> dict:
    done, seconds, restarts, native = 0, 0.0, 0, []
    while done < runs and restarts <= 20:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", target, "--worker-runs", str(runs - done),
                               "--out", str(out)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        seconds += time.perf_counter() - start
        err = proc.stderr
        finished = re.search(r"Done (\d+) runs in", err)
        if finished:
            done += int(finished.group(1))
            break
        counts = [int(n) for n in re.findall(r"^#(\d+)\s", err, re.MULTILINE)]
        done += max(counts, default=0)
        if "INFO: Running with" not in err and "INFO: Seed:" not in err:  # the target could not even start
            raise RuntimeError(f"the {target} worker failed before fuzzing:\n{err[-3000:]}")
        kind = re.search(r"ERROR: libFuzzer: ([\w-]+)", err)
        artifact = re.search(r"Test unit written to (\S+)", err)
        native.append({"kind": kind.group(1) if kind else f"exit {proc.returncode}",
                       "input": artifact.group(1) if artifact else None, "stderr": err[-1500:]})
        (out / f"{target}.worker-{restarts}.log").write_text(err[-20000:])
        restarts += 1
    log = out / f"{target}.failures.jsonl"
    python = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {"executions": done, "seconds": round(seconds, 1), "execs_per_s": round(done / max(seconds, 1e-9), 1),
            "distinct_failures": len(python) + len(native),
            "failures": [{"key": f["key"], "input": f["input"]} for f in python] +
                        [{"key": n["kind"], "input": n["input"]} for n in native]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="", help="TARGET=N,... (default: " +
                        ",".join(f"{k}={v}" for k, v in DEFAULT_RUNS.items()) + ")")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every default execution count.")
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"), help="Corpus, failures and logs go here.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-runs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.worker_runs, args.out)
        return
    runs = {k: int(v * args.scale) for k, v in DEFAULT_RUNS.items()}
    if args.runs:
        runs = {k: int(v) for k, v in (part.split("=") for part in args.runs.split(","))}
    unknown = set(runs) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {sorted(TARGETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"fuzzer": "atheris (libFuzzer), coverage-guided over soundweave's modules",
              "limits": {"timeout_s": TIMEOUT_S, "rss_limit_mb": RSS_LIMIT_MB}, "targets": {}}
    for target, n in runs.items():
        report["targets"][target] = run_target(target, n, args.out)
        print(json.dumps({target: report["targets"][target]}), file=sys.stderr, flush=True)
    report["executions"] = sum(t["executions"] for t in report["targets"].values())
    report["seconds"] = round(sum(t["seconds"] for t in report["targets"].values()), 1)
    report["distinct_failures"] = sum(t["distinct_failures"] for t in report["targets"].values())
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
