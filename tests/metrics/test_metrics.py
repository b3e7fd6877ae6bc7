import pytest
import torch

from soundweave.metrics import median_rank, mel_distance, recall_at_k, si_sdr, spectral_convergence
from tests.helpers import check_margin, tone


def test_si_sdr_values():
    x = tone(440, 1.0).unsqueeze(0)
    check_margin("metrics.si_sdr.identical_db", si_sdr(x, x).item(), 60, above=True)
    check_margin("metrics.si_sdr.rescaled_db", si_sdr(x, 0.3 * x).item(), 60, above=True)  # scale invariant
    noise = torch.randn_like(x) * x.std()
    # equal power noise -> ~0 dB; a tenth of its amplitude -> ~20 dB
    check_margin("metrics.si_sdr.equal_power_noise.abs_error_db", abs(si_sdr(x, x + noise).item() - 0.0), 0.5)
    check_margin("metrics.si_sdr.tenth_noise.abs_error_db", abs(si_sdr(x, x + 0.1 * noise).item() - 20.0), 0.7)


def test_spectral_convergence_and_mel_distance():
    a = torch.rand(2, 8, 10)
    assert torch.allclose(spectral_convergence(a, a), torch.zeros(2))
    assert spectral_convergence(a, torch.zeros_like(a)).tolist() == pytest.approx([1.0, 1.0])
    x = tone(440, 1.0).unsqueeze(0)
    assert mel_distance(x, x, 16000).item() == 0
    check_margin("metrics.mel_distance.octave_vs_rescaled", mel_distance(x, tone(880, 1.0).unsqueeze(0), 16000).item(),
                 mel_distance(x, 0.9 * x, 16000).item(), above=True)


def test_recall_at_k():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.3, 0.2, 0.1]])  # ranks 1, 2, 3
    r = recall_at_k(sim, ks=(1, 2, 3))
    assert r == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(2 / 3), "R@3": 1.0}
    assert median_rank(sim) == 2.0
    assert recall_at_k(torch.eye(5))["R@1"] == 1.0
