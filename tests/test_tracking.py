"""MLflow tracking: the sink against a real ``mlflow server`` (including an outage), the spool's
replay, ``osd top`` and ``osd tracking flush``."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from discovery.cli import main
from discovery.plots import PayoffLeg, drawdown, payoff_at_expiry
from discovery.spool import Spool
from discovery.tracking import MlflowSink, StructureRecord, flatten_params
from tests.mlflow_server import MlflowServer, fresh_sqlite_store

GENERATION_KEYS = ("best_fitness", "mean_fitness", "evaluations", "evals_per_s", "diversity")
PARENT_ARTIFACTS = {"config.yaml", "discovered_structures.json", "evaluations.parquet", "plots"}
CHILD_ARTIFACTS = {"dna.json", "trade_log.parquet", "equity_curve.parquet", "equity.png", "payoff.png"}


def make_config() -> dict:
    # > 100 params (several log_batch calls) and one value over MLflow's 6000-character limit
    return {"name": "t", "seed": 7, "search": {"generations": 10, "mu": 40, "lambda": 80},
            "space": {f"gene_{i}": {"low": i, "high": i + 10} for i in range(60)},
            "notes": "x" * 7000}


def make_structure(rank: int) -> StructureRecord:
    rng = np.random.default_rng(rank)
    dates = pd.bdate_range("2024-01-02", periods=120).date
    equity = 100_000 + np.cumsum(rng.normal(20, 300, len(dates)))
    return StructureRecord(
        rank=rank,
        dna={"structure_type": "iron_condor", "front_dte_min": 20 + rank, "front_dte_max": 45,
             "short_strike_delta": 0.16, "spread_width_strikes": 5, "entry_regime": [0, 2]},
        params={"fill": "cross", "commission": 0.65},
        in_sample={"sharpe": 1.5 - rank / 10, "n_trades": 80},
        out_of_sample={"sharpe": 1.0 - rank / 10, "n_trades": 30},
        lockbox={"sharpe_annual": 0.8 - rank / 10, "max_drawdown": -0.07},
        honesty={"dsr": 0.96, "pbo": 0.12, "passed": rank == 1},
        verdict="discovered" if rank == 1 else "rejected: DSR below 0.95",
        equity_curve=pd.DataFrame({"date": dates, "equity": equity, "daily_pnl": np.r_[0, np.diff(equity)]}),
        trade_log=pd.DataFrame({"entry_date": dates[:4], "exit_date": dates[5:9], "pnl": [120.0, -80.0, 40.0, 15.0]}),
        legs=[PayoffLeg("P", 380, 1, 0.9), PayoffLeg("P", 385, -1, 1.6),
              PayoffLeg("C", 415, -1, 1.5), PayoffLeg("C", 420, 1, 0.8)],
        spot=400.0,
    )


def generation_metrics(gen: int) -> dict[str, float]:
    return {"best_fitness": 0.1 * gen, "mean_fitness": 0.05 * gen, "evaluations": 80.0 * (gen + 1),
            "evals_per_s": 40.0, "diversity": 1.0 / (gen + 1)}


def finish(sink: MlflowSink, n_structures: int = 2, structures_first: bool = False) -> None:
    report = {"experiment": sink.experiment, "discovered_structures": [{"rank": r} for r in range(1, n_structures + 1)]}
    evaluations = pd.DataFrame({"genome": [f"g{i}" for i in range(50)], "fold0_sharpe": np.linspace(-1, 1, 50)})
    structures = [make_structure(r) for r in range(1, n_structures + 1)]
    if structures_first:  # as discover does: the structures once the report has scored them, the rest last
        sink.log_structures(structures)
        structures = []
    sink.finish(report, evaluations, structures)
    sink.close(120)  # finish returns at once; close waits until the results, tables and plots are sent


def check_everything_logged(client: MlflowClient, experiment: str, generations: int, n_structures: int,
                            tmp: Path) -> None:
    """Every result of one sink run is on the server, readable, exactly once."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id])
    parents = [r for r in runs if r.data.tags.get("osd.kind") == "discovery"]
    children = [r for r in runs if r.data.tags.get("osd.kind") == "structure"]
    assert len(parents) == 1 and len(children) == n_structures
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.mu"] == "40" and parent.data.params["space.gene_59.high"] == "69"
    assert parent.data.params["notes"].endswith("[see config.yaml]")
    for key in GENERATION_KEYS:
        history = client.get_metric_history(parent.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(generations)), key
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == [
            generation_metrics(g)[key] for g in range(generations)]
    download = tmp / f"download-{parent.info.run_id}"
    client.download_artifacts(parent.info.run_id, "", str(download))
    assert PARENT_ARTIFACTS <= {p.name for p in download.iterdir()}
    assert yaml.safe_load((download / "config.yaml").read_text()) == make_config()
    assert len(json.loads((download / "discovered_structures.json").read_text())["discovered_structures"]) == n_structures
    assert len(pd.read_parquet(download / "evaluations.parquet")) == 50
    plots = {p.name for p in (download / "plots").iterdir()}
    assert plots == {"fitness.png"} | {f"rank{r:02d}_{k}.png" for r in range(1, n_structures + 1) for k in ("equity", "payoff")}
    for png in (download / "plots").iterdir():
        assert imread(png).shape[0] > 100
    for child in children:
        rank = int(child.data.metrics["rank"])
        expected = make_structure(rank)
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.params["front_dte_min"] == str(20 + rank)
        assert child.data.params["entry_regime"] == "[0, 2]"
        assert child.data.params["eval.fill"] == "cross"
        assert child.data.metrics["oos.sharpe"] == pytest.approx(1.0 - rank / 10)
        assert child.data.metrics["honesty.dsr"] == 0.96
        assert child.data.tags["honesty.passed"] == str(rank == 1)
        assert json.loads(child.data.tags["osd.dna"]) == expected.dna
        assert len(client.get_metric_history(child.info.run_id, "oos.sharpe")) == 1
        folder = tmp / f"download-{child.info.run_id}"
        client.download_artifacts(child.info.run_id, "", str(folder))
        assert {p.name for p in folder.iterdir()} == CHILD_ARTIFACTS
        assert json.loads((folder / "dna.json").read_text()) == expected.dna
        pd.testing.assert_frame_equal(pd.read_parquet(folder / "trade_log.parquet"), expected.trade_log)
        pd.testing.assert_frame_equal(pd.read_parquet(folder / "equity_curve.parquet"), expected.equity_curve)
        assert imread(folder / "equity.png").shape[0] > 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def logged(server, tmp_path_factory):
    """One complete sink run on the server: experiment "complete", 6 generations, 3 structures."""
    sink = MlflowSink("complete", tracking_uri=server.url, spool_dir=tmp_path_factory.mktemp("spool"))
    sink.start(make_config())
    for gen in range(6):
        sink.log_generation(gen, generation_metrics(gen))
    finish(sink, n_structures=3, structures_first=True)
    return sink


def test_sink_writes_runs_metrics_params_and_artifacts_to_a_server(server, logged, tmp_path):
    assert logged.last_flush.pending == 0 and logged.last_flush.rejected == 0
    assert not logged.spool_path.exists()
    check_everything_logged(MlflowClient(server.url), "complete", 6, 3, tmp_path)


def test_osd_top_against_a_server(server, logged):
    runner = CliRunner()
    result = runner.invoke(main, ["top", "--experiment", "complete", "--tracking-uri", server.url, "-n", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4 and lines[2].split()[:2] == ["1", "iron_condor"] and lines[3].split()[0] == "2"
    assert "discovered" in lines[2] and "0.900" in lines[2]  # verdict, OOS Sharpe of rank 1
    as_json = json.loads(runner.invoke(main, ["top", "--experiment", "complete", "--tracking-uri",
                                              server.url, "--json"]).output)
    assert [item["rank"] for item in as_json] == [1, 2, 3]
    assert [item["dna"] for item in as_json] == [make_structure(r).dna for r in (1, 2, 3)]
    assert as_json[0]["metrics"]["lockbox.sharpe_annual"] == pytest.approx(0.7)
    assert {item["parent_run_id"] for item in as_json} == {logged.parent_run_id}
    bad = runner.invoke(main, ["top", "--experiment", "nope", "--tracking-uri", server.url])
    assert bad.exit_code != 0 and "unknown experiment 'nope'" in bad.output and "complete" in bad.output


def test_server_outage_loses_and_duplicates_nothing(server, tmp_path, capsys):
    """Run A is mid-search when the server stops and finishes after it is back; run B finishes
    while it is down, leaves its spool, and `osd tracking flush` sends it later."""
    run_a = MlflowSink("outage", tracking_uri=server.url, spool_dir=tmp_path / "spool-a",
                       flush_interval_s=0.05, retry_interval_s=0.2)
    run_b = MlflowSink("flush-later", tracking_uri=server.url, spool_dir=tmp_path / "spool-b",
                       finish_timeout_s=0.5)
    for sink in (run_a, run_b):
        sink.start(make_config())
        sink.log_generation(0, generation_metrics(0))
    server.stop()
    try:
        for gen in range(1, 4):
            for sink in (run_a, run_b):
                sink.log_generation(gen, generation_metrics(gen))
            time.sleep(0.25)  # let run A's retry come due (and fail) between generations
        assert len(Spool.open(run_a.spool_path).pending_seqs()) >= 3
        finish(run_b)
        assert f"osd tracking flush --spool {run_b.spool_path}" in capsys.readouterr().err
        assert run_b.spool_path.exists()
        still_down = CliRunner().invoke(main, ["tracking", "flush", "--spool", str(tmp_path / "spool-b")])
        assert still_down.exit_code != 0 and "still spooled" in still_down.output
    finally:
        server.start()
    for gen in range(4, 6):
        run_a.log_generation(gen, generation_metrics(gen))
    finish(run_a)
    assert run_a.last_flush.pending == 0 and not run_a.spool_path.exists()
    flushed = CliRunner().invoke(main, ["tracking", "flush", "--spool", str(tmp_path / "spool-b")])
    assert flushed.exit_code == 0, flushed.output
    assert "done" in flushed.output and not run_b.spool_path.exists()
    client = MlflowClient(server.url)
    check_everything_logged(client, "outage", 6, 2, tmp_path)
    check_everything_logged(client, "flush-later", 4, 2, tmp_path)


def test_replaying_a_sent_journal_creates_no_duplicates(tmp_path):
    """A crash after the store took the operations but before the spool deleted them: the same
    journal is sent twice (to a local sqlite store, the same store code a server runs)."""
    sink = MlflowSink("replay", tracking_uri="http://127.0.0.1:9", spool_dir=tmp_path / "spool",
                      finish_timeout_s=0.0)
    sink.start(make_config())
    for gen in range(4):
        sink.log_generation(gen, generation_metrics(gen))
    finish(sink)
    copy = tmp_path / "copy"
    shutil.copytree(sink.spool_path, copy)
    client = MlflowClient(fresh_sqlite_store(tmp_path / "store.db"))
    first = Spool.open(sink.spool_path).flush(client)
    # the copy has tried every creation (recorded before sending) but never heard the answers
    attempted = json.loads((sink.spool_path / "runs.json").read_text())["attempted"]
    (copy / "runs.json").write_text(json.dumps({"runs": {}, "experiments": {}, "attempted": attempted}))
    again = Spool.open(copy).flush(client)
    for result in (first, again):
        assert result.pending == 0 and result.rejected == 0 and result.sent > 10
    check_everything_logged(client, "replay", 4, 2, tmp_path)


def test_a_sqlite_store_keeps_its_artifacts_beside_it(tmp_path, monkeypatch):
    # MLflow's own default would put them in ./mlruns of whatever directory the flush runs in
    work, store = tmp_path / "work", tmp_path / "store"
    work.mkdir(), store.mkdir()
    monkeypatch.chdir(work)
    sink = MlflowSink("beside", tracking_uri="http://127.0.0.1:9", spool_dir=tmp_path / "spool",
                      finish_timeout_s=0.0)
    sink.start(make_config())
    finish(sink, n_structures=1)
    client = MlflowClient(fresh_sqlite_store(store / "mlflow.db"))
    assert Spool.open(sink.spool_path).flush(client).pending == 0
    experiment = client.get_experiment_by_name("beside")
    assert experiment.artifact_location == (store / "mlruns" / "beside").as_uri()
    assert any((store / "mlruns" / "beside").rglob("dna.json")) and not (work / "mlruns").exists()


def test_osd_top_on_the_local_default_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()
    missing = runner.invoke(main, ["top", "--experiment", "local"])
    assert missing.exit_code != 0 and "no MLflow store" in missing.output
    assert not (tmp_path / "mlflow.db").exists()  # looking did not create an empty store
    fresh_sqlite_store(tmp_path / "mlflow.db")  # what MLflow would create here, only faster
    sink = MlflowSink("local", spool_dir=tmp_path / "spool")
    sink.start(make_config())
    sink.log_generation(0, generation_metrics(0))
    finish(sink)
    assert sink.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(main, ["top", "--experiment", "local"])
    assert result.exit_code == 0 and result.output.splitlines()[2].split()[0] == "1"
    none_yet = runner.invoke(main, ["top", "--experiment", "Default"])
    assert none_yet.exit_code != 0 and "no finished discovery run" in none_yet.output
    # a later run that reports nothing: top reads the latest run and says so
    empty = MlflowSink("local", spool_dir=tmp_path / "spool")
    empty.start(make_config())
    empty.finish({"discovered_structures": []}, pd.DataFrame({"genome": []}), [])
    assert empty.close(120)
    latest = runner.invoke(main, ["top", "--experiment", "local"])
    assert latest.exit_code == 0 and "reported no structures" in latest.output
    earlier = runner.invoke(main, ["top", "--experiment", "local", "--run", sink.parent_run_id, "--json"])
    assert [item["rank"] for item in json.loads(earlier.output)] == [1, 2]


def test_osd_top_names_when_a_structure_trades():
    from discovery.cli.top import _conditions

    evaluation = {"regimes": ["calm", "stressed"]}
    assert _conditions({"entry_regime": None}, evaluation) == "always"
    assert _conditions({"entry_regime": [0]}, evaluation) == "regime calm"
    assert _conditions({"entry_regime": [0, 1], "min_iv_percentile": 20.0, "max_iv_percentile": 80.0},
                       evaluation) == "regime calm,stressed IV pct 20-80"
    assert _conditions({"entry_regime": [1]}, None) == "regime 1"  # no labels logged: the code


def test_osd_top_bad_input_fails_fast_with_one_line():
    runner = CliRunner()
    t0 = time.monotonic()
    result = runner.invoke(main, ["top", "--experiment", "x", "--tracking-uri", "http://127.0.0.1:9"])
    assert time.monotonic() - t0 < 5
    assert result.exit_code != 0
    assert result.output.strip() == "Error: cannot reach the MLflow tracking server at http://127.0.0.1:9 (Connection refused)"
    zero = runner.invoke(main, ["top", "--experiment", "x", "-n", "0", "--tracking-uri", "http://127.0.0.1:9"])
    assert zero.exit_code != 0 and "-n must be at least 1" in zero.output


def test_tracking_flush_bad_input(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["tracking", "flush", "--spool", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and f"no spool folder at {tmp_path / 'nope'}" in missing.output
    empty = runner.invoke(main, ["tracking", "flush", "--spool", str(tmp_path)])
    assert empty.exit_code != 0 and "holds no tracking spool" in empty.output


def test_payoff_at_expiry_of_an_iron_condor():
    legs = make_structure(1).legs  # credit = 1.6 + 1.5 - 0.9 - 0.8 = 1.4 per share
    pnl = payoff_at_expiry(legs, np.array([370.0, 383.0, 400.0, 417.0, 430.0]))
    np.testing.assert_allclose(pnl, [-360.0, -60.0, 140.0, -60.0, -360.0])


def test_drawdown_and_param_flattening():
    np.testing.assert_allclose(drawdown(pd.Series([100.0, 120.0, 90.0, 130.0])), [0, 0, -0.25, 0])
    flat = flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": "text", "e": {}, "f": None})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "d": "text", "e": "{}", "f": "null"}
