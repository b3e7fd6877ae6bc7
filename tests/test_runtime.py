import pytest
import torch

import soundweave
from soundweave.errors import ConfigError
from soundweave.runtime import autocast, check_precision, make_generator, pick_device, seed_everything


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("mps", "cpu")


def test_autocast_bf16_and_fp32():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ConfigError):
        check_precision("fp8")


def test_generators_and_seeds():
    assert make_generator() is None
    g = torch.Generator().manual_seed(1)
    assert make_generator(seed=5, generator=g) is g
    assert torch.equal(torch.rand(3, generator=make_generator(7)), torch.rand(3, generator=make_generator(7)))
    seed_everything(3)
    x = torch.rand(2)
    seed_everything(3)
    assert torch.equal(x, torch.rand(2))


def test_public_names_resolve_lazily():
    assert soundweave.MelImageCodec.__name__ == "MelImageCodec"
    assert issubclass(soundweave.SoundweaveError, Exception)
    with pytest.raises(AttributeError):
        soundweave.NotAThing  # noqa: B018


def test_time_call_and_memory_readings():
    from soundweave.runtime import peak_rss_mib, reset_peak_rss, rss_mib, time_call

    calls = []
    seconds = time_call(lambda: calls.append(1), repeats=4, warmup=2, reduce=max)
    assert len(calls) == 6 and 0 <= seconds < 1
    reset_peak_rss()
    if rss_mib() is not None:  # Linux
        assert peak_rss_mib() >= rss_mib() * 0.5 > 0


def test_default_precision_is_bf16_only_on_a_cpu_with_native_bf16(bf16_cpu):
    from soundweave.runtime import default_precision

    bf16_cpu(True)
    assert default_precision("cpu") == "bf16" and default_precision(torch.device("cpu")) == "bf16"
    assert default_precision("cuda") == "fp32"
    bf16_cpu(False)
    assert default_precision("cpu") == "fp32" and default_precision("cuda") == "fp32"


def test_cpu_bf16_native_reads_the_cpu_and_honours_an_isa_cap(monkeypatch):
    from soundweave import runtime

    caps = torch.cpu.get_capabilities()
    # CI's second pass caps oneDNN at AVX2 for the whole run: read the CPU itself first, with no cap set
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    runtime.cpu_bf16_native.cache_clear()
    try:
        assert runtime.cpu_bf16_native() == bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
        runtime.cpu_bf16_native.cache_clear()
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
        assert runtime.cpu_bf16_native() is False  # oneDNN capped below its bf16 kernels
    finally:
        runtime.cpu_bf16_native.cache_clear()


def test_bf16_on_a_cpu_without_native_bf16_warns_once(bf16_cpu, caplog):
    bf16_cpu(False)
    with caplog.at_level("WARNING", logger="soundweave.runtime"):
        for _ in range(3):
            with autocast("cpu", "bf16"):
                pass
        with autocast("cpu", "fp32"):
            pass
    warnings = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert len(warnings) == 1 and "fp32" in warnings[0], warnings
    caplog.clear()
    bf16_cpu(True)
    with caplog.at_level("WARNING", logger="soundweave.runtime"), autocast("cpu", "bf16"):
        pass
    assert not [r for r in caplog.records if "emulated" in r.getMessage()]
