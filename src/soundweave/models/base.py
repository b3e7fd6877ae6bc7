"""Persistence shared by every soundweave model: `config.json` + `model.safetensors`.

A model subclasses `PretrainedModel`, keeps a JSON-able description of itself in `get_config()`
(by default `dataclasses.asdict(self.config)`) and can be rebuilt by `from_config(dict)` (by default
`cls(**dict)`). Composite models override the two hooks. Nothing here pickles code: configs are JSON,
weights are safetensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from ..errors import CheckpointError, SoundweaveError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_REGISTRY: dict[str, type[PretrainedModel]] = {}


def looks_like_hub_id(name: str) -> bool:
    """'org/name' (one slash, not a relative or absolute path)."""
    return name.count("/") == 1 and not name.startswith((".", "/", "~"))


def resolve_pretrained(path_or_id: str | os.PathLike, *, revision: str | None = None,
                       allow_patterns: list[str] | None = None) -> Path:
    """A local folder as is, else a Hugging Face hub id downloaded to the cache (needs network)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_id)
    if path.exists():
        raise CheckpointError(f"{name!r} is a file; from_pretrained needs a model folder or a hub id")
    if not looks_like_hub_id(name):
        raise CheckpointError(f"model folder {name!r} does not exist (and is not a hub id like 'org/name')")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, allow_patterns=allow_patterns))
    except Exception as exc:  # offline, unknown repo, auth: all become one clear error
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = " (HF_HUB_OFFLINE is set, so only cached downloads can be used)" if offline else ""
        raise CheckpointError(
            f"could not load {name!r}: not a local folder, and fetching it from the Hugging Face hub failed"
            f"{hint}: {type(exc).__name__}: {exc}"
        ) from exc


def atomic_write_bytes(path: Path, write) -> None:
    """Call write(tmp_path) then rename into place, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_config(folder: Path) -> dict[str, Any]:
    file = folder / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{str(folder)!r} has no {CONFIG_NAME}; is it a soundweave model folder?")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{str(file)!r} holds a JSON {type(config).__name__}, not an object of settings")
    return config


def _weights_header(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a safetensors file, read from its header (nothing is allocated)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"could not read weights {str(weights)!r}: {exc}") from exc


@contextlib.contextmanager
def _parameter_budget(limit: int, tensors: int, folder: Path):
    """Stop a model build (in this thread) as soon as its parameters pass `limit` values, its buffers (stored or
    not: filter banks, windows, masks) 4 x limit + 64M values, it has registered more than `tensors` parameters
    and buffers, or it has built an absurd number of modules: a config.json with depth 2**63, 2000 quantizer
    levels or 16M mel bands is an error at once, not an endless loop or an out-of-memory."""
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_module_registration_hook,
        register_module_parameter_registration_hook,
    )

    owner, counts = threading.get_ident(), {"numel": 0, "modules": 0, "tensors": 0, "buffers": 0}
    buffer_limit = 4 * limit + 64_000_000

    def on_buffer(module, name, buffer):
        on_tensor(module, name, buffer)
        if threading.get_ident() == owner and buffer is not None:
            counts["buffers"] += buffer.numel()
            if counts["buffers"] > buffer_limit:
                raise CheckpointError(f"config.json in {str(folder)!r} describes buffers of over {buffer_limit:,} "
                                      "values; its sizes are implausible")

    def on_tensor(module, name, tensor):
        if threading.get_ident() == owner and tensor is not None:
            counts["tensors"] += 1
            if counts["tensors"] > tensors:
                raise CheckpointError(f"config.json in {str(folder)!r} describes a model of over {tensors:,} "
                                      f"tensors, far more than {WEIGHTS_NAME} holds; the config and the weights do "
                                      "not match")

    def on_parameter(module, name, param):
        on_tensor(module, name, param)
        if threading.get_ident() == owner and param is not None:
            counts["numel"] += param.numel()
            if counts["numel"] > limit:
                raise CheckpointError(f"config.json in {str(folder)!r} describes a model of over {limit:,} parameter "
                                      f"values, far more than {WEIGHTS_NAME} holds; the config and the weights do "
                                      "not match")

    def on_module(module, name, submodule):
        if threading.get_ident() == owner:
            counts["modules"] += 1
            if counts["modules"] > 100_000:
                raise CheckpointError(f"config.json in {str(folder)!r} describes a model of over 100,000 modules")

    handles = [register_module_parameter_registration_hook(on_parameter),
               register_module_buffer_registration_hook(on_buffer),
               register_module_module_registration_hook(on_module)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def check_sizes(target: type, config: dict[str, Any], weights: Path) -> None:
    """Size the model `config` describes on the meta device (no memory) and compare it with the weights file, so
    a config.json with absurd sizes is a CheckpointError before anything is allocated."""
    header = _weights_header(weights)
    stored = sum(math.prod(s) for s in header.values())
    limit = 2 * stored + 1_000_000  # shared (tied) tensors are stored once
    try:
        # non-persistent buffers (windows, filter banks, masks) are not stored: allow a few per stored tensor
        with torch.device("meta"), _parameter_budget(limit, 3 * len(header) + 256, weights.parent):
            probe = target.from_config(dict(config))
        expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    except SoundweaveError:
        raise
    except Exception as exc:
        if "meta" in str(exc).lower():  # a model that cannot be sized on the meta device: the real build decides
            return
        # the real build would fail the same way, perhaps after allocating what the config asks for
        raise CheckpointError(
            f"config in {str(weights.parent)!r} does not fit {target.__name__}: {type(exc).__name__}: {exc}") from exc
    for name, shape in expected.items():
        if name in header and header[name] != shape:
            raise CheckpointError(
                f"config.json and weights in {str(weights.parent)!r} do not match: {name} is {list(header[name])} in "
                f"{WEIGHTS_NAME} but the config makes it {list(shape)}")
    numel = sum(math.prod(s) for s in expected.values())
    if numel > limit:
        raise CheckpointError(
            f"config.json in {str(weights.parent)!r} describes a model of {numel:,} values but {WEIGHTS_NAME} holds "
            f"{stored:,}; the config and the weights do not match")


class PretrainedModel(nn.Module):
    """Base class: `save_pretrained(dir)` / `from_pretrained(dir_or_hub_id)`.

    Subclasses set `config` (a dataclass) in `__init__`, or override `get_config`/`from_config`.
    """

    config: Any
    # state-dict keys an older folder may lack (the model keeps their initial values), also where the class is a
    # part of the model loaded (a codec inside a SoundStorm); anything else missing is a CheckpointError
    optional_weights: ClassVar[tuple[str, ...]] = ()

    _model_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._model_name = cls.__name__
        _REGISTRY[cls.__name__] = cls

    # -- configuration hooks -------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        if dataclasses.is_dataclass(self.config):
            return dataclasses.asdict(self.config)
        return dict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    # -- persistence -----------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"_class": type(self).__name__, **self.get_config()}
        text = json.dumps(config, indent=2, sort_keys=True)
        atomic_write_bytes(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text))
        atomic_write_bytes(folder / WEIGHTS_NAME, lambda tmp: save_model(self, tmp))
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, *, revision: str | None = None,
                        device: str | torch.device | None = None, strict: bool = True, **overrides) -> Self:
        """Load from a folder written by `save_pretrained`, or a hub id with the same two files.

        `overrides` replace config entries (e.g. dropout) before the model is built.
        """
        folder = resolve_pretrained(path_or_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
        config = read_config(folder)
        stored = config.pop("_class", cls.__name__)
        if not isinstance(stored, str):
            raise CheckpointError(f"'_class' in {str(folder / CONFIG_NAME)!r} should be a class name, got {stored!r}")
        target = cls
        if stored != cls.__name__:
            if cls is PretrainedModel or issubclass(_REGISTRY.get(stored, object), cls):
                target = _REGISTRY.get(stored, cls)
            else:
                raise CheckpointError(f"{str(folder)!r} holds a {stored}, not a {cls.__name__}")
        config.update(overrides)
        weights = folder / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{str(folder)!r} has no {WEIGHTS_NAME}")
        try:
            check_sizes(target, config, weights)
            model = target.from_config(config)
        except SoundweaveError as exc:  # a setting the class rejects: say which folder's config.json holds it
            if str(folder) in str(exc):
                raise
            raise CheckpointError(f"config.json in {str(folder)!r} is not a valid {target.__name__}: {exc}") from exc
        except Exception as exc:  # any other way a config can fail to build this class
            raise CheckpointError(
                f"config in {str(folder)!r} does not fit {target.__name__}: {type(exc).__name__}: {exc}") from exc
        try:
            missing, unexpected = load_model(model, str(weights), strict=False)
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"could not read weights {str(weights)!r}: {exc}") from exc
        optional = {f"{name}.{key}" if name else key for name, module in model.named_modules()
                    for key in getattr(type(module), "optional_weights", ())}
        missing = [k for k in missing if k not in optional]
        if strict and (missing or unexpected):
            raise CheckpointError(
                f"weights in {str(weights)!r} do not match {target.__name__}: "
                f"missing {sorted(missing)[:8]}, unexpected {sorted(unexpected)[:8]}"
            )
        model.eval()
        if device is not None:
            model.to(device)
        return model

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def load_pretrained(path_or_id: str | os.PathLike, **kwargs) -> PretrainedModel:
    """Load any soundweave model folder, dispatching on the class named in its config.json."""
    return PretrainedModel.from_pretrained(path_or_id, **kwargs)
