"""The semantic check of graph networks: every problem is refused before anything runs, at the
path of its field, and a valid graph gets its running order, its passes and its cost."""

import copy
import json
import time
from typing import Any

import pytest

from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits
from worker.simulation.plan import parse_request
from worker.simulation.plans import STEP_OVERHEAD_S

DELTA = {"tau_mem_inv": 50.0, "v_th": 20.0, "v_reset": 10.0, "synapse": "delta", "rho_reset": 20.0}


def balanced(ne: int = 80, ni: int = 20, delay: int = 15) -> dict[str, Any]:
    """A small Brunel-like network: two populations, two external drives, four recurrent edges."""
    population = {"type": "lifbox_refrac", "params": DELTA, "v0": {"init": "uniform", "low": 0.0, "high": 20.0}}
    return {
        "dt": 1e-4,
        "steps": 100,
        "network": {
            "nodes": [
                {"name": "E", "size": ne, **population},
                {"name": "I", "size": ni, **population},
                {"name": "drive_E", "type": "poisson", "rates": 2500.0, "sources": 8, "shape": [ne]},
                {"name": "drive_I", "type": "poisson", "rates": 2500.0, "sources": 8, "shape": [ni]},
            ],
            "edges": [
                {"from": "drive_E", "to": "E", "type": "one_to_one", "weight": 0.1},
                {"from": "drive_I", "to": "I", "type": "one_to_one", "weight": 0.1},
                {"from": "E", "to": "E", "type": "fixed_in_degree", "k": 8, "weight": 0.1, "delay": delay},
                {"from": "E", "to": "I", "type": "fixed_in_degree", "k": 8, "weight": 0.1, "delay": delay},
                {"from": "I", "to": "E", "type": "fixed_in_degree", "k": 2, "weight": -0.5, "delay": delay},
                {"from": "I", "to": "I", "type": "fixed_in_degree", "k": 2, "weight": -0.5, "delay": delay},
            ],
        },
    }


def refused(request: dict[str, Any], limits: Limits | None = None) -> tuple[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(request, limits)
    error = caught.value.errors[0]
    return error.path, error.msg


def changed(change: Any) -> dict[str, Any]:
    request = balanced()
    change(request)
    return request


def test_a_graph_runs_its_inputs_first_and_recurrent_nodes_in_passes_of_the_shortest_cycle_delay() -> None:
    _, plan = parse_request(balanced(delay=15))
    assert plan.graph is not None
    order = plan.graph.order
    assert sorted(order) == ["E", "I", "drive_E", "drive_I"]
    assert order.index("drive_E") < order.index("E") and order.index("drive_I") < order.index("I")
    assert plan.graph.pass_steps == 15
    assert [layer.name for layer in plan.layers] == ["E", "I"] and plan.record_spikes == ["E", "I"]
    assert plan.neurons == 100


def test_a_graph_without_cycles_runs_whole_chunks_and_orders_its_nodes_along_the_edges() -> None:
    request = {
        "steps": 10,
        "network": {
            "nodes": [
                {"name": "out", "type": "lif", "size": 2},
                {"name": "hidden", "type": "lif", "size": 3},
                {"name": "in", "type": "poisson", "rates": 10.0, "shape": [3]},
            ],
            "edges": [
                {"from": "hidden", "to": "out", "type": "dense"},
                {"from": "in", "to": "hidden", "type": "one_to_one"},
                {"from": "in", "to": "out", "type": "dense", "delay": 4},
            ],
        },
    }
    _, plan = parse_request(request)
    assert plan.graph is not None and plan.graph.pass_steps is None
    assert plan.graph.order == ["in", "hidden", "out"]


def test_a_cycle_without_delay_is_refused_naming_the_cycle() -> None:
    def undelay(request: dict[str, Any]) -> None:
        request["network"]["edges"][3]["delay"] = 0  # E -> I
        request["network"]["edges"][4]["delay"] = 0  # I -> E

    path, message = refused(changed(undelay))
    assert path == "network.edges[3].delay"
    assert "the cycle E -> I -> E has no delay" in message


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda r: r["network"]["edges"][2].update({"to": "X"}), "network.edges[2].to", "unknown node 'X'; nodes are E, I"),
        (lambda r: r["network"]["edges"][2].update({"to": "drive_E"}), "network.edges[2].to", "is an input"),
        (lambda r: r["network"]["edges"][0].update({"to": "I"}), "network.edges[0].to", "one_to_one needs two nodes of one size"),
        (lambda r: r["network"]["edges"][2].update({"k": 81}), "network.edges[2].k", "81 distinct sources asked of 80"),
        (lambda r: r["network"]["edges"][2].update({"k": 80, "autapses": False}), "network.edges[2].k", "asked of 79"),
        (lambda r: r["network"]["nodes"][1].update({"name": "E"}), "network.nodes[1].name", "duplicate node name 'E'"),
        (lambda r: r["network"]["nodes"][0].update({"v0": [1.0, 2.0]}), "network.nodes[0].v0", "not broadcastable to [80]"),
        (lambda r: r["network"]["edges"][2].update({"delay": {"low": 5, "high": 2}}), "network.edges[2].delay.low", "exceed"),
        (lambda r: r["network"]["edges"][2].update({"delay": -1}), "network.edges[2].delay", "greater than or equal to 0"),
        (lambda r: r["network"]["nodes"][2].update({"sources": 800, "rates": 5000.0}), "network.nodes[2].sources", "255"),
        (
            lambda r: (r.update({"input": {"type": "constant", "value": [1.0]}}), r["network"]["nodes"][0].update(name="input")),
            "network.nodes[0].name",
            "'input' names the request's top-level input",
        ),
        (lambda r: r["network"]["nodes"][0].update({"frequency": 1}), "network.nodes[0].frequency", "the fields here are"),
        (lambda r: r["network"]["edges"][0].update({"type": "gap"}), "network.edges[0]", "'dense', 'one_to_one'"),
        (lambda r: r.pop("steps"), "network.nodes[2].steps", "is required for this input type (or give top-level 'steps')"),
    ],
)
def test_a_bad_graph_is_refused_at_its_field(change: Any, path: str, words: str) -> None:
    got_path, message = refused(changed(change))
    assert (got_path, words in message) == (path, True), message


def test_a_graph_needs_a_population_and_a_number_of_steps() -> None:
    request = {"steps": 5, "network": {"nodes": [{"name": "in", "type": "poisson", "rates": 1.0, "shape": [2]}]}}
    assert refused(request) == ("network.nodes", "has no neuron population: a graph needs at least one")
    request = {"network": {"nodes": [{"name": "P", "type": "lif", "size": 2}]}}
    assert refused(request) == ("steps", "is required: no input node gives the number of steps")


def test_edges_that_carry_spikes_refuse_a_source_of_values() -> None:
    request = balanced()
    request["network"]["nodes"][2] = {"name": "drive_E", "type": "constant", "value": 1.0, "shape": [80]}
    request["network"]["edges"][0] = {"from": "drive_E", "to": "E", "type": "fixed_in_degree", "k": 3}
    path, message = refused(request)
    assert path == "network.edges[0].from" and "carry spikes" in message


def test_a_sparse_edge_checks_its_lists() -> None:
    def sparse(**fields: Any) -> dict[str, Any]:
        edge = {"from": "E", "to": "I", "type": "sparse", "pre": [0, 79], "post": [0, 19], "delay": 1} | fields
        return changed(lambda r: r["network"]["edges"].append(edge))

    assert parse_request(sparse())[1].graph is not None
    assert refused(sparse(pre=[0, 80])) == ("network.edges[6].pre[1]", "80 is out of range: the source 'E' has 80 neurons")
    assert refused(sparse(post=[0])) == ("network.edges[6].post", "has 1 entries but pre has 2")
    assert refused(sparse(weight=[1.0, 2.0, 3.0])) == ("network.edges[6].weight", "has 3 values for 2 synapses")
    assert refused(sparse(delay=[1])) == ("network.edges[6].delay", "has 1 values for 2 synapses")
    indices = {"dtype": "int32", "shape": [2], "base64": "AAAAAAEAAAA="}  # [0, 1]
    _, plan = parse_request(sparse(pre=indices, delay=[2, 7]))
    assert plan.graph is not None
    assert plan.graph.edges[6].arrays["pre"].tolist() == [0, 1]
    assert (plan.graph.edges[6].min_delay, plan.graph.edges[6].max_delay) == (2, 7)


def test_a_dense_weight_matrix_is_target_by_source() -> None:
    edge = {"from": "I", "to": "E", "type": "dense", "weight": [[0.0] * 80] * 20, "delay": 1}
    path, message = refused(changed(lambda r: r["network"]["edges"].append(edge)))
    assert path == "network.edges[6].weight" and "expected [80, 20]" in message


def test_the_cost_counts_worst_case_synaptic_events_synapse_memory_and_the_draws() -> None:
    _, plan = parse_request(balanced())
    assert plan.cost is not None and plan.graph is not None
    synapses = 8 * 80 + 8 * 20 + 2 * 80 + 2 * 20
    assert sum(edge.synapses for edge in plan.graph.edges) == synapses + 100
    drive_count = plan.graph.sources[0].max_count
    assert drive_count is not None and 1 < drive_count <= 8
    assert plan.cost.step_ops == synapses + 100 * drive_count  # every spike through every synapse
    passes = (80 + 80) + (80 + 20) + (20 + 80) + (20 + 20) + (100 + 100)  # over both populations of each edge
    assert plan.cost.build_ops == synapses + 100 + passes  # a draw per synapse
    one_weight_and_delay = 4 * synapses + 8 * (81 + 81 + 21 + 21)
    rings, drive_rows = 15 * 100 * 4, 100 * 4  # the delay rings; the drive's count-table row per feature
    assert plan.cost.fixed_bytes == one_weight_and_delay + 4 * 100 + rings + drive_rows  # + one-to-one weights


def test_too_many_synapses_are_refused_naming_the_largest_edge() -> None:
    path, message = refused(balanced(), Limits(max_synapses=500))
    assert path == "network.edges[2]" and "synapses ('E->E': 640)" in message


def test_drawing_a_bernoulli_edge_costs_its_synapses_not_its_pairs() -> None:
    """10^12 pairs at p = 1e-6: about a million synapses, drawn by geometric gaps."""
    request = {
        "steps": 1,
        "network": {
            "nodes": [{"name": "P", "type": "lif", "size": 1_000_000}],
            "edges": [{"from": "P", "to": "P", "type": "pairwise_bernoulli", "p": 1e-6, "delay": 1}],
        },
    }
    _, plan = parse_request(request, Limits(max_synaptic_ops=10**11))
    assert plan.cost is not None and plan.graph is not None
    bound = plan.graph.edges[0].synapses
    assert 10**6 < bound < 1.02 * 10**6 and plan.cost.build_ops == bound + 2 * 10**6
    path, message = refused(request, Limits(max_synaptic_ops=2 * 10**6))
    assert path == "network.edges[0]" and "synaptic operations" in message


def test_the_chain_form_still_needs_its_input() -> None:
    assert refused({"network": {"layers": [{"type": "lif"}]}, "steps": 3})[0] == "input"


def test_errors_inside_graph_unions_carry_no_union_tags() -> None:
    request = copy.deepcopy(balanced())
    request["network"]["edges"][2]["delay"] = {"low": 1}
    assert refused(request)[0] == "network.edges[2].delay.high"
    request = balanced()
    request["network"]["nodes"][0]["params"] = {"v_th": "high"}
    assert refused(request)[0] == "network.nodes[0].params.v_th"


def layered(*edges: dict[str, Any], **node: Any) -> dict[str, Any]:
    return {
        "steps": 5,
        "input": {"type": "poisson", "rates": 10.0, "shape": [4]},
        "network": {
            "nodes": [
                {"name": "fc", "type": "linear", "in_features": 4, "out_features": 3, **node},
                {"name": "P", "type": "lif", "size": 3},
            ],
            "edges": list(edges),
        },
    }


def test_layer_nodes_take_their_shape_from_their_identity_edges() -> None:
    into = {"from": "input", "to": "fc", "type": "identity"}
    out = {"from": "fc", "to": "P", "type": "identity"}
    _, plan = parse_request(layered(into, out))
    assert [(layer.name, layer.in_shape, layer.out_shape) for layer in plan.layers] == [("fc", (4,), (3,)), ("P", (3,), (3,))]
    assert refused(layered(out)) == ("network.nodes[0]", "layer node 'fc' has no edge into it")
    stray = {"from": "nowhere", "to": "fc", "type": "identity"}
    assert refused(layered(stray, out)) == ("network.edges[0].from", "unknown node 'nowhere'; nodes are fc, P, input")
    dense = {"from": "input", "to": "fc", "type": "dense"}
    assert refused(layered(dense, out)) == ("network.edges[0].type", "edges into layer node 'fc' are 'identity' edges")
    path, message = refused(layered(into, out, in_features=5))
    assert path == "network.nodes[0].in_features" and "'input' gives shape [4]" in message
    loop = {"from": "fc", "to": "fc", "type": "identity", "delay": 1}
    assert refused(layered(loop, out))[1].endswith("a cycle of layer nodes needs a population in it")
    wrong = {"from": "input", "to": "P", "type": "identity"}
    path, message = refused(layered(into, out, wrong))
    assert path == "network.edges[2].to" and "'input' gives 4 values and 'P' takes 3" in message


def test_short_passes_add_their_python_between_kernel_calls_to_a_steps_estimate() -> None:
    """In the graph runner (box neurons with a subtractive reset: not the network kernel's), each
    node and edge makes a call per pass; the network kernel makes one per chunk."""
    slow, fast, kernel = balanced(ne=4000, ni=1000, delay=1), balanced(ne=4000, ni=1000, delay=15), balanced(ne=4000, ni=1000)
    for request in (slow, fast):
        for node in request["network"]["nodes"][:2]:
            node["params"] = {**node["params"], "reset_method": "subtract"}
    for request in (slow, fast, kernel):
        request["steps"] = 5000
    slow_cost, fast_cost, kernel_cost = (parse_request(request)[1].cost for request in (slow, fast, kernel))
    assert slow_cost is not None and fast_cost is not None and kernel_cost is not None
    assert slow_cost.pass_calls == 10.0 and fast_cost.pass_calls == 10 / 15 and kernel_cost.pass_calls == 0.0
    extra = slow_cost.step_seconds - fast_cost.step_seconds
    assert extra == pytest.approx(STEP_OVERHEAD_S * (10 - 10 / 15))  # the rest of the two steps' estimates is equal


def test_inputs_given_by_one_rate_are_checked_without_expanding_them_and_their_tables_are_costed() -> None:
    """24 Poisson nodes of 12,000,000 features each, in a request of about 2 KB: expanded, their
    check took the API seconds; as given it takes milliseconds (the bound here keeps a wide
    margin), and the per-feature tables a worker would hold are counted against the memory limit."""
    nodes = [{"name": f"in{i}", "type": "poisson", "rates": 5.0, "sources": 40, "shape": [12_000_000]} for i in range(24)]
    request = {"steps": 10, "network": {"nodes": [*nodes, {"name": "P", "type": "lif", "size": 1}], "edges": []}}
    assert len(json.dumps(request)) < 3000
    started = time.perf_counter()
    path, message = refused(request, Limits(max_chunk_bytes=2 * 2**30))
    assert time.perf_counter() - started < 0.5
    assert path == "network.nodes[0]"
    assert "one step needs 2.1 GiB of memory (poisson 'in0': 91.6 MiB, of which 45.8 MiB held for the whole run)" in message
    two = {**request, "network": {**request["network"], "nodes": [*nodes[:2], request["network"]["nodes"][-1]]}}
    _, plan = parse_request(two)
    assert plan.graph is not None and all(source.array is not None and source.array.size == 1 for source in plan.graph.sources)


# --- synaptic channels and plasticity ---------------------------------------------------------------

CHANNELLED = {"tau_mem_inv": 50.0, "v_leak": -60.0, "v_th": -50.0, "v_reset": -60.0}


def learning(**edge: Any) -> dict[str, Any]:
    """Poisson input into lif_channels neurons through a plastic edge and a recurrent one."""
    return {
        "dt": 1e-4,
        "steps": 1000,
        "network": {
            "nodes": [
                {"name": "in", "type": "poisson", "rates": 15.0, "shape": [100]},
                {"name": "P", "type": "lif_channels", "size": 10, "params": dict(CHANNELLED)},
                {"name": "L", "type": "lif", "size": 10},
            ],
            "edges": [
                {"name": "learn", "from": "in", "to": "P", "type": "pairwise_bernoulli", "p": 0.5, "delay": 1,
                 "synapse": {"type": "conductance_exp", "tau_syn": 0.005, "e_rev": 0.0},
                 "plasticity": {"type": "stdp", "w_max": 0.01}, **edge},
                {"from": "P", "to": "P", "type": "fixed_in_degree", "k": 3, "delay": 2,
                 "synapse": {"type": "current_exp", "tau_syn": 0.01}},
                {"from": "in", "to": "P", "type": "fixed_in_degree", "k": 2, "weight": 0.5,
                 "synapse": {"type": "current_exp", "tau_syn": 0.01}},
            ],
        },
    }  # fmt: skip


def test_edges_with_one_synapse_share_a_channel_of_their_target() -> None:
    _, plan = parse_request(learning())
    assert plan.graph is not None
    channels = plan.layer("P").channels
    assert [(c.synapse, c.tau_syn, c.e_rev) for c in channels] == [("conductance_exp", 0.005, 0.0), ("current_exp", 0.01, 0.0)]
    assert [edge.channel for edge in plan.graph.edges] == [1, 2, 2]
    assert [edge.plastic for edge in plan.graph.edges] == [True, False, False]
    assert plan.graph.pass_steps == 1, "a plastic edge runs its target step by step"


def _edge(index: int, **change: Any) -> Any:
    def apply(request: dict[str, Any]) -> None:
        request["network"]["edges"][index].update(change)

    return apply


def _plastic_from(source: dict[str, Any]) -> Any:
    def apply(request: dict[str, Any]) -> None:
        request["network"]["nodes"][0] = {"name": "in", **source}

    return apply


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (_edge(1, to="L"), "network.edges[1].synapse.type", "'L' (lif) has none; populations of lif_channels have channels"),
        (_edge(0, synapse={"type": "current_exp", "tau_syn": 0.0}), "network.edges[0].synapse.tau_syn", "greater than 0"),
        (_edge(0, plasticity={"type": "stdp", "w_min": 1.0, "w_max": 0.5}), "network.edges[0].plasticity.w_min", "over w_max"),
        (_edge(0, plasticity={"type": "stdp", "tau_pre": -0.02}), "network.edges[0].plasticity.tau_pre", "greater than 0"),
        (_edge(0, plasticity={"type": "stdp", "bounds": "elastic"}), "network.edges[0].plasticity.bounds", "'hard' or 'soft'"),
        (_edge(0, delay=0), "network.edges[0].delay", "one delay for all its synapses, of at least one step"),
        (_edge(0, delay={"low": 1, "high": 3}), "network.edges[0].delay", "one delay for all its synapses"),
        (lambda r: r["network"]["edges"][0].update(type="identity", to="in2", p=None) or r["network"]["edges"][0].pop("p")
         or r["network"]["nodes"].append({"name": "in2", "type": "lif_channels", "size": 100}),
         "network.edges[0].type", "no weights to change"),
        (lambda r: r["network"]["edges"][0].update(to="R", synapse={"type": "delta"})
         or r["network"]["nodes"].append({"name": "R", "type": "li", "size": 10}), "network.edges[0].to", "'R' (li) does not"),
        (_plastic_from({"type": "poisson", "rates": 15.0, "sources": 4, "shape": [100]}), "network.edges[0].from", "up to"),
        (lambda r: r.update(batch=2), "network.edges[0].plasticity", "without a batch"),
        (lambda r: r["network"]["edges"][0].update(**{"from": "R", "type": "dense", "p": None})
         or r["network"]["edges"][0].pop("p") or r["network"]["nodes"].append({"name": "R", "type": "li", "size": 10}),
         "network.edges[0].from", "'R' gives other values"),
        (lambda r: r["network"]["edges"][1].update(name="learn", plasticity={"type": "stdp"}), "network.edges[1].name",
         "plastic edge named 'learn' too"),
        (lambda r: r["network"]["nodes"][1]["params"].update(integration="exact"), "network.edges[0].synapse.type",
         "current channels only"),
        (lambda r: r["network"]["edges"][2]["synapse"].update(initial=[1.0, 2.0]), "network.edges[2].synapse.initial",
         "not broadcastable to [10]"),
        (lambda r: [r["network"]["edges"][i]["synapse"].update(initial=v) for i, v in ((1, 1.0), (2, 2.0))],
         "network.edges[2].synapse.initial", "shares its channel of 'P' with network.edges[1]"),
        (lambda r: r.update(record={"weights": {"missing": {"every": 10}}}), "record.weights.missing",
         "names no plastic edge (plastic edges: 'learn')"),
        (lambda r: r.update(record={"weights": {"learn": {}}}), "record.weights.learn", "give either 'every'"),
        (lambda r: r.update(record={"weights": {"learn": {"steps": [5, 1000]}}}), "record.weights.learn.steps",
         "step 1000 is past the run's last step (999)"),
    ],
)  # fmt: skip
def test_a_bad_synapse_or_plastic_edge_is_refused_at_its_field(change: Any, path: str, words: str) -> None:
    request = learning()
    change(request)
    where, message = refused(request)
    assert where == path and words in message, (where, message)


def test_a_plastic_edge_costs_its_updates_its_memory_and_its_snapshots() -> None:
    _, still = parse_request(learning(plasticity=None))
    request = learning()
    request["record"] = {"weights": {"learn": {"every": 100}}}
    _, plastic = parse_request(request)
    assert plastic.cost is not None and still.cost is not None and plastic.graph is not None
    edge = plastic.graph.edges[0]
    ops = [next(part.ops for part in plan.cost.layers if part.loc == edge.loc) for plan in (plastic, still)]  # type: ignore[union-attr]
    assert ops[0] == 3 * ops[1], "delivery, depression and potentiation"
    assert plastic.cost.weight_values == edge.synapses * 11 and plastic.cost.weight_synapses == edge.synapses
    extra = plastic.cost.fixed_bytes - still.cost.fixed_bytes
    assert extra >= 12 * edge.synapses, "a weight, a source and a place by target per synapse beside the target"
    assert plastic.cost.record_bytes - still.cost.record_bytes == edge.synapses * (11 * 4 + 2 * 4)


def test_weight_snapshots_over_the_record_limit_are_refused_naming_the_edge() -> None:
    request = learning()
    request["record"] = {"weights": {"learn": {"every": 1}}}
    where, message = refused(request, Limits(max_record_bytes=1_000_000))
    assert where == "record.weights.learn" and "plastic edges' weights would take" in message


def test_a_chain_has_no_weights_to_record() -> None:
    chain = {"network": {"layers": [{"type": "lif"}]}, "input": {"type": "constant", "value": 1.0, "shape": [2], "steps": 5},
             "record": {"weights": {"x": {"every": 1}}}}  # fmt: skip
    assert refused(chain)[0] == "record.weights.x"


def test_the_network_kernel_graphs_take_long_chunks() -> None:
    _, plan = parse_request(learning(to="P"))
    request = learning()
    request["network"]["nodes"].pop(2)
    _, kernel = parse_request(request)
    assert kernel.network_kernel and not plan.network_kernel, "a lif population keeps the graph in the Python runner"
    assert kernel.cost is not None and kernel.cost.chunk_steps == 1000 == kernel.steps
    request["steps"] = 100_000
    assert parse_request(request)[1].cost.chunk_steps > 1000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "edge",
    [
        {"type": "one_to_one"},
        {"type": "pairwise_bernoulli", "p": 0.5},
        {"type": "fixed_in_degree", "k": 2},
        {"type": "fixed_out_degree", "k": 2},
        {"type": "dense"},
    ],
    ids=lambda edge: edge["type"],
)
def test_a_weight_that_is_not_a_number_gets_one_plain_message_at_its_field(edge: dict[str, Any]) -> None:
    """One error, at ``weight``, in words: no alternatives of a union, no validator names."""
    nodes = [{"name": "in", "type": "poisson", "rates": 10.0, "shape": [3]}, {"name": "P", "type": "lif", "size": 3}]
    request = {"network": {"nodes": nodes, "edges": [{"from": "in", "to": "P", **edge, "weight": float("nan")}]}, "steps": 10}
    with pytest.raises(InvalidRequest) as caught:
        parse_request(request)
    [error] = caught.value.errors
    assert error.line.startswith("network.edges[0].weight: "), error.line
    assert "finite" in error.msg or "nested list of numbers" in error.msg, error.msg
    assert not any(word in error.line for word in ("union", "function", "Input should be a valid dictionary")), error.line
