"""Encoders: statistics, determinism, and parity with Norse's encoders."""

import pytest
import torch

import worker.engine as snn


def test_poisson_rate_matches_the_requested_frequency() -> None:
    rates = torch.tensor([0.0, 0.2, 0.5, 1.0])
    spikes = snn.poisson_encode(rates, 20000, f_max=100, dt=0.001, generator=torch.Generator().manual_seed(0))
    p = (0.001 * 100 * rates).tolist()
    counts = spikes.sum(0).tolist()
    for count, prob in zip(counts, p, strict=True):
        sigma = (20000 * prob * (1 - prob)) ** 0.5
        assert abs(count - 20000 * prob) <= 5 * sigma + 1e-9
    assert counts[0] == 0


def test_poisson_is_reproducible_with_a_seed_and_varies_without_reuse() -> None:
    rates = torch.full((50,), 0.5)
    a = snn.PoissonEncoder(100, seed=7)(rates)
    b = snn.PoissonEncoder(100, seed=7)(rates)
    c = snn.PoissonEncoder(100, seed=8)(rates)
    assert torch.equal(a, b) and not torch.equal(a, c)
    encoder = snn.PoissonEncoder(100, seed=7)
    first, second = encoder(rates), encoder(rates)
    assert not torch.equal(first, second), "the generator advances between calls"
    encoder.reset()
    assert torch.equal(encoder(rates), first)


def test_constant_current_encoder_spikes_more_for_stronger_current() -> None:
    spikes = snn.ConstantCurrentLIFEncoder(100)(torch.tensor([0.5, 2.0, 4.0]))
    counts = spikes.sum(0)
    assert counts[0] == 0 and 0 < counts[1] < counts[2]


def test_spike_latency_gives_one_spike_earlier_for_stronger_input() -> None:
    spikes = snn.SpikeLatencyLIFEncoder(100)(torch.tensor([2.0, 4.0, 0.1]))
    assert spikes.sum(0).tolist() == [1, 1, 0]
    first = spikes.argmax(0)
    assert first[1] < first[0]


def test_population_encoder_peaks_at_the_nearest_centre() -> None:
    out = snn.PopulationEncoder(11, scale=1.0)(torch.tensor([0.0, 0.5, 1.0]))
    assert out.shape == (3, 11)
    assert out.argmax(-1).tolist() == [0, 5, 10]


class TestNorseParity:
    norse_encode = pytest.importorskip("norse.torch.functional.encode")

    def test_poisson(self) -> None:
        rates = torch.rand(3, 8, generator=torch.Generator().manual_seed(1))
        ours = snn.poisson_encode(rates, 200, 80, 0.001, torch.Generator().manual_seed(3))
        theirs = self.norse_encode.poisson_encode(rates, 200, 80, 0.001, torch.Generator().manual_seed(3))
        assert torch.equal(ours, theirs) and ours.sum() > 0

    def test_constant_current_and_latency(self) -> None:
        current = torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) * 5
        assert torch.equal(
            snn.constant_current_lif_encode(current, 150), self.norse_encode.constant_current_lif_encode(current, 150)
        )
        assert torch.equal(snn.spike_latency_lif_encode(current, 150), self.norse_encode.spike_latency_lif_encode(current, 150))

    def test_latency_of_spikes_and_graded_values(self) -> None:
        generator = torch.Generator().manual_seed(5)
        spikes = (torch.rand(30, 4, 7, generator=generator) < 0.2).float()
        graded = torch.randn(30, 4, 7, generator=generator)  # negative sums keep a neuron open
        for x in (spikes, spikes.bool(), graded):
            assert torch.equal(snn.spike_latency_encode(x), self.norse_encode.spike_latency_encode(x))

    def test_population(self) -> None:
        values = torch.rand(5, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(snn.population_encode(values, 9), self.norse_encode.population_encode(values, 9))
