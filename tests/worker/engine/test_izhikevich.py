"""Izhikevich: the classic presets behave as named."""

import torch

import worker.engine as snn


def spike_times(behavior: str, current: float, steps: int = 1000) -> torch.Tensor:
    out, _ = snn.Izhikevich(snn.IZHIKEVICH_PRESETS[behavior])(torch.full((steps, 1), current))
    return out[:, 0].nonzero().flatten()


def test_each_of_the_twenty_presets_runs_as_a_request_layer() -> None:
    """Every preset named in the request format builds and simulates with its own parameters."""
    from worker.simulation.plan import parse_request
    from worker.simulation.runner import simulate

    assert len(snn.IZHIKEVICH_PRESETS) == 20
    for name, preset in snn.IZHIKEVICH_PRESETS.items():
        request = {
            "network": {"layers": [{"type": "izhikevich", "name": "n", "preset": name}]},
            "input": {"type": "constant", "value": [10.0], "steps": 50},
            "record": {"voltages": ["n"]},
        }
        voltages = simulate(*parse_request(request)).layers["n"].voltages
        _, state = snn.Izhikevich(preset, record_states=True)(torch.full((50, 1), 10.0))
        assert torch.equal(torch.from_numpy(voltages), state.v), name


def test_tonic_spiking_fires_at_a_regular_rate() -> None:
    times = spike_times("tonic_spiking", 10.0, steps=2000)
    intervals = times.diff()[2:].float()  # past the onset transient
    assert len(times) >= 10
    assert intervals.std() / intervals.mean() < 0.05


def test_tonic_bursting_fires_in_bursts() -> None:
    intervals = spike_times("tonic_bursting", 15.0).diff()
    short, long = intervals.min().item(), intervals.max().item()
    assert long > 4 * short, "within-burst intervals must be much shorter than the gaps between bursts"
    assert (intervals <= 2 * short).sum() >= 4, "bursts hold several closely spaced spikes"


def test_spike_frequency_adaptation_slows_down() -> None:
    intervals = spike_times("spike_frequency_adaptation", 30.0).diff()
    assert intervals[-1] > intervals[0]


def test_phasic_spiking_fires_once_at_onset() -> None:
    """Izhikevich (2004) drives this neuron with a step of I = 0.5: one spike, then silence."""
    assert len(spike_times("phasic_spiking", 0.5, steps=4000)) == 1


def test_without_input_the_tonic_neuron_rests() -> None:
    assert len(spike_times("tonic_spiking", 0.0)) == 0
