"""The Ray executor on a simulated three-node cluster (ray.cluster_utils.Cluster on 127.0.0.1):
results identical to the serial executor, shards fetched once per node, and the same result after
an evaluator is killed or a node is removed mid-run."""
import dataclasses
import itertools
import os
import random
import time
from functools import partial

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from backtest.errors import UserError  # noqa: E402
from cluster.executor import RayExecutor  # noqa: E402
from cluster.pool import task_plan  # noqa: E402
from cluster.runtime import LOOPBACK_ENV, ray_session  # noqa: E402
from discovery.evaluate import evaluate_batch  # noqa: E402
from discovery.run import dataset_path, discover, make_context  # noqa: E402
from discovery.space import SearchSpace  # noqa: E402
from tests.test_discover import small_config, without_timestamps  # noqa: E402,F401


def test_unreachable_address_fails_fast():
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        with ray_session("ray://127.0.0.1:9"):
            pass
    assert time.perf_counter() - t0 < 10


@pytest.fixture(scope="module")
def three_nodes():
    os.environ.update(LOOPBACK_ENV)
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a private loopback test cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_task_plan_cuts_large_tasks_first_then_smaller_ones_down_to_the_floor():
    plan = task_plan(184, 2, seconds_per_item=0.003, min_task_seconds=0.05)  # floor: 17 items
    assert [start for start, _ in plan] == list(itertools.accumulate([0] + [size for _, size in plan[:-1]]))
    assert sum(size for _, size in plan) == 184
    sizes = [size for _, size in plan]
    assert sizes[0] == 46 and sizes == sorted(sizes, reverse=True), "a quarter of what is left, shrinking"
    assert all(size >= 17 for size in sizes[:-1]), "never below the floor of measured work (but the rest)"
    assert task_plan(5, 2, None, 0.1) == [(0, 2), (2, 1), (3, 1), (4, 1)], "unmeasured: no floor"
    # a call with less work than a floor per evaluator (a generation's 25 fresh genomes) is split
    # evenly instead of leaving an evaluator idle (17 + 8 before)
    assert task_plan(25, 2, seconds_per_item=0.003, min_task_seconds=0.05) == [(0, 13), (13, 12)]
    assert task_plan(0, 2, 0.01, 0.1) == []


def _run(config, out, executor, on_generation=None):
    discover(config, out, map_fn=executor, on_generation=on_generation)
    return without_timestamps(out)


def test_identical_to_serial_and_one_fetch_per_node(three_nodes, small_planted_market, serial_run, tmp_path):
    executor = RayExecutor()
    assert _run(small_config(small_planted_market), tmp_path, executor) == without_timestamps(serial_run)
    (ray_map,) = executor.maps.values()
    stats = ray_map.stats()
    assert len({s["node_id"] for s in stats}) == 3, "evaluators run on every node"
    # one evaluator per node (1 CPU each), so an evaluator's fetches are its node's fetches
    assert all(n == 1 for s in stats for n in s["fetches"].values()), "each node fetches each shard once"
    assert executor.overhead()["evaluation_s"] > 0


def test_a_data_path_the_cluster_cannot_read_fails_fast_with_its_name(three_nodes, small_planted_market, tmp_path):
    config = small_config(small_planted_market)
    context = dataclasses.replace(make_context(config, dataset_path(config)), dataset=str(tmp_path / "gone"))
    space = SearchSpace.from_spec(config.space)
    genome = space.to_dict(space.random_genome(random.Random(0)))
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=f"cannot load {tmp_path / 'gone'} on node"):
        RayExecutor()(partial(evaluate_batch, context), [[genome]])
    assert time.perf_counter() - t0 < 30


def _after_first_generation(action):
    """An on_generation hook that runs ``action`` once, mid-run, when generation 0 is done."""
    def hook(record):
        if record["generation"] == 0:
            action()
    return hook


def test_killed_evaluator_gives_the_same_result(three_nodes, small_planted_market, serial_run, tmp_path):
    executor = RayExecutor()

    def kill_one_evaluator():  # the first evaluator always gets the next call's first task
        (ray_map,) = executor.maps.values()
        ray.kill(ray_map.evaluators[0])

    result = _run(small_config(small_planted_market), tmp_path, executor, _after_first_generation(kill_one_evaluator))
    assert result == without_timestamps(serial_run)
    (ray_map,) = executor.maps.values()
    assert ray_map.requeued >= 1, "the killed evaluator's work was retried elsewhere"


def test_removed_node_gives_the_same_result(three_nodes, small_planted_market, serial_run, tmp_path):
    cluster, workers = three_nodes
    executor = RayExecutor()

    def remove_a_node():  # one that hosts an evaluator, so the fault path is exercised
        (ray_map,) = executor.maps.values()
        busy_nodes = set(ray_map.node_of.values())
        node = next(w for w in reversed(workers) if w.node_id in busy_nodes)
        cluster.remove_node(node)
        # wait until the cluster knows, so the next generation meets the departure deterministically
        # (an idle evaluator on a dead node may otherwise never be handed a task, and go unnoticed)
        deadline = time.monotonic() + 60
        while any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
            assert time.monotonic() < deadline, "the removed node never left the cluster"
            time.sleep(0.2)

    result = _run(small_config(small_planted_market), tmp_path, executor, _after_first_generation(remove_a_node))
    assert result == without_timestamps(serial_run)
    (ray_map,) = executor.maps.values()
    assert ray_map.retired >= 1, "the removed node's evaluator was replaced"
