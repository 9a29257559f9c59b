"""A result as a Neo Block and as an NWB file: every neuron's spike times (a spike of step t at
t * dt s), the recorded voltages and a plastic edge's weights, each read back with the format's
own library (Neo with Elephant's statistics, NWB with pynwb)."""

import datetime
import json
import pathlib
import sys

import elephant.statistics
import numpy as np
import pytest
import quantities as pq
from pynwb import NWBHDF5IO

from worker.simulation.plan import parse_request
from worker.simulation.results import Result
from worker.simulation.runner import simulate

BATCHED = {  # three entries of 40 LIF neurons under Poisson input; some stay silent
    "network": {"layers": [
        {"type": "linear", "name": "synapses", "in_features": 20, "out_features": 40,
         "weight": {"init": "normal", "mean": 0.1, "std": 0.3}, "bias": False},
        {"type": "lif", "name": "population", "params": {"tau_mem_inv": 100.0}},
    ]},
    "input": {"type": "poisson", "rates": 60.0, "shape": [20], "steps": 300},
    "batch": 3,
    "seed": 4,
    "record": {"spikes": ["population"], "voltages": ["population"], "neurons": {"population": [0, 7, 39]}},
}  # fmt: skip
PLASTIC = {  # Song et al.'s experiment, small: 100 Poisson inputs onto one neuron, weights snapshotted
    "dt": 0.0001,
    "steps": 3000,
    "seed": 1,
    "network": {
        "nodes": [
            {"name": "inputs", "type": "poisson", "rates": 40.0, "shape": [100]},
            {"name": "neuron", "type": "lif_channels", "size": 1, "v0": -74.0,
             "params": {"tau_mem_inv": 100.0, "v_leak": -74.0, "v_th": -54.0, "v_reset": -60.0, "rho_reset": 0.0}},
        ],
        "edges": [
            {"name": "plastic", "from": "inputs", "to": "neuron", "type": "dense", "delay": 1,
             "weight": {"init": "uniform", "low": 0.0, "high": 0.05},
             "synapse": {"type": "conductance_exp", "tau_syn": 0.005, "e_rev": 0.0},
             "plasticity": {"type": "stdp", "a_pre": 0.001, "a_post": -0.00105, "w_min": 0.0, "w_max": 0.05}},
        ],
    },
    "record": {"spikes": ["neuron"], "voltages": ["neuron"], "weights": {"plastic": {"every": 1000}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def batched() -> Result:
    return simulate(*parse_request(BATCHED))


@pytest.fixture(scope="module")
def plastic() -> Result:
    return simulate(*parse_request(PLASTIC))


def expected_trains(result: Result, layer: str, entry: int) -> list[np.ndarray]:
    """Each neuron's spike times in seconds, from the result's events the obvious way."""
    recorded = result.layers[layer]
    neurons = int(np.prod(recorded.shape))
    return [
        np.sort(recorded.times[(recorded.senders == neuron) & (recorded.batch == entry)]) * result.dt for neuron in range(neurons)
    ]


# --- Neo --------------------------------------------------------------------------------------------


def test_neo_has_a_segment_per_batch_entry_and_a_train_per_neuron_with_its_spike_times(batched: Result) -> None:
    block = batched.to_neo()
    assert [segment.name for segment in block.segments] == ["batch 0", "batch 1", "batch 2"]
    for entry, segment in enumerate(block.segments):
        trains = segment.spiketrains
        expected = expected_trains(batched, "population", entry)
        assert len(trains) == 40, "silent neurons have (empty) trains too"
        assert any(len(train) == 0 for train in trains) and any(len(train) > 1 for train in trains)
        for neuron, (train, times) in enumerate(zip(trains, expected, strict=True)):
            assert train.annotations == {"layer": "population", "neuron": neuron, "batch": entry}
            assert train.segment is segment
            np.testing.assert_allclose(train.rescale(pq.s).magnitude, times)
            assert (train.t_start, train.t_stop) == (0 * pq.s, 0.3 * pq.s)
    group = block.groups[0]
    assert group.name == "population" and len(group.spiketrains) == 3 * 40 and len(group.analogsignals) == 3


@pytest.mark.filterwarnings("ignore:The 'copy' argument in Quantity is deprecated")  # Elephant 1.2 on quantities 0.16
def test_elephants_statistics_apply_to_the_trains_as_they_are(batched: Result) -> None:
    trains = batched.to_neo().segments[1].spiketrains
    rates = [float(elephant.statistics.mean_firing_rate(train).rescale(pq.Hz)) for train in trains]
    np.testing.assert_allclose(rates, batched.layers["population"].counts[1] / 0.3)
    histogram = elephant.statistics.time_histogram(list(trains), bin_size=10 * pq.ms)
    assert histogram.shape == (30, 1) and int(histogram.magnitude.sum()) == batched.layers["population"].counts[1].sum()
    spiking = [train for train in trains if len(train) > 2]
    isi = elephant.statistics.isi(spiking[0])
    np.testing.assert_allclose(isi.rescale(pq.s).magnitude, np.diff(spiking[0].magnitude))


def test_neo_voltages_are_an_analog_signal_per_entry_naming_the_kept_neurons(batched: Result) -> None:
    block = batched.to_neo()
    for entry, segment in enumerate(block.segments):
        (signal,) = segment.analogsignals
        assert signal.shape == (300, 3) and signal.sampling_period == 0.001 * pq.s
        np.testing.assert_array_equal(signal.magnitude, batched.layers["population"].voltages[:, entry, :])
        np.testing.assert_array_equal(signal.array_annotations["neuron"], [0, 7, 39])


def test_an_unbatched_graph_gives_one_segment_and_a_layer_can_be_chosen(plastic: Result) -> None:
    block = plastic.to_neo(layers=["neuron"])
    (segment,) = block.segments
    (train,) = segment.spiketrains
    np.testing.assert_allclose(train.magnitude, expected_trains(plastic, "neuron", 0)[0])
    assert len(train) > 0 and train.t_stop == 0.3 * pq.s
    with pytest.raises(ValueError, match=r"'inputs' has no recorded spikes or voltages in this result \(recorded: neuron\)"):
        plastic.to_neo(layers=["inputs"])


# --- NWB --------------------------------------------------------------------------------------------


def read_nwb(result: Result, path: pathlib.Path) -> dict:
    result.to_nwb(path, session_start_time=datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc))
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        acquisition = {
            name: (series.data[:], series.rate, json.loads(series.comments)) for name, series in nwb.acquisition.items()
        }
        plasticity = nwb.processing.get("plasticity")
        weights = {}
        if plasticity is not None:
            for name, data in plasticity.data_interfaces.items():
                weights[name] = data.to_dataframe() if hasattr(data, "to_dataframe") else (data.data[:], data.timestamps[:])
        return {
            "start": nwb.session_start_time,
            "id": nwb.identifier,
            "units": units,
            "acquisition": acquisition,
            "weights": weights,
        }


def test_nwb_units_hold_every_neurons_spike_times_per_batch_entry(batched: Result, tmp_path: pathlib.Path) -> None:
    read = read_nwb(batched, tmp_path / "batched.nwb")
    units = read["units"]
    assert len(units) == 3 * 40 and read["start"].year == 2026
    for entry in range(3):
        rows = units[units["batch"] == entry]
        assert list(rows["neuron"]) == list(range(40)) and set(rows["layer"]) == {"population"}
        for times, expected in zip(rows["spike_times"], expected_trains(batched, "population", entry), strict=True):
            np.testing.assert_allclose(times, expected)
        assert all(np.array_equal(interval, [[0.0, 0.3]]) for interval in rows["obs_intervals"])
    data, rate, comments = read["acquisition"]["population voltage"]
    np.testing.assert_array_equal(data, batched.layers["population"].voltages)
    assert rate == 1000.0 and comments == {"layer": "population", "neurons": [0, 7, 39]}


def test_nwb_holds_a_plastic_edges_synapses_and_weight_snapshots(plastic: Result, tmp_path: pathlib.Path) -> None:
    read = read_nwb(plastic, tmp_path / "plastic.nwb")
    assert "batch" not in read["units"].columns and len(read["units"]) == 1
    weights = plastic.weights["plastic"]
    synapses = read["weights"]["plastic synapses"]
    np.testing.assert_array_equal(synapses["pre"], weights.pre)
    np.testing.assert_array_equal(synapses["post"], weights.post)
    np.testing.assert_array_equal(synapses["final_weight"], weights.final)
    snapshots, timestamps = read["weights"]["plastic weights"]
    np.testing.assert_array_equal(snapshots, weights.snapshots)
    np.testing.assert_allclose(timestamps, [0.1, 0.2, 0.3])
    assert not np.array_equal(weights.final, snapshots[0]), "the weights changed during the run"


def test_without_the_library_the_error_says_which_extra_to_install(plastic: Result, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynwb", None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match=r"pip install 'spikeserve\[nwb\]'"):
        plastic.to_nwb()
    monkeypatch.setitem(sys.modules, "neo", None)
    with pytest.raises(ImportError, match=r"pip install 'spikeserve\[neo\]'"):
        plastic.to_neo()
