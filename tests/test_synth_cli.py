"""`osd data synth`, `osd data stats`, `osd demo` and the plant file format: success paths and
every bad-input case (one-line error, non-zero exit, nothing half-written)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest.synth import PlantError, load_plants, parse_plants
from discovery.cli import main

REPO = Path(__file__).resolve().parents[1]
GOOD = ["--symbols", "SPY", "--start", "2021-01-04", "--end", "2021-01-29", "--seed", "3"]


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_line_error(result, *words):
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error"), result.output
    for w in words:
        assert w in lines[0], (w, lines[0])


def _no_leftovers(parent: Path, name: str):
    assert not [p for p in parent.iterdir() if name in p.name], list(parent.iterdir())


def test_synth_then_stats_and_info(tmp_path):
    out = tmp_path / "mkt"
    r = _run("data", "synth", "--out", str(out), *GOOD, "--mode", "planted",
             "--plant", str(REPO / "configs" / "planted_example.yaml"))
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["generator"]["mode"] == "planted" and meta["generator"]["plants"][0]["name"] == "rich_calm_puts"
    r = _run("data", "stats", str(out), "--json", "--symbol", "SPY")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)["underlyings"]["SPY"]
    assert s["days"] == 19 and s["crossed_quotes"] == 0
    r = _run("data", "stats", str(out))
    assert "mean 30-day ATM IV" in r.output and "upward in regime calm" in r.output
    # refuses to replace without --overwrite, replaces with it
    _one_line_error(_run("data", "synth", "--out", str(out), *GOOD), "not empty", "--overwrite")
    assert _run("data", "synth", "--out", str(out), *GOOD, "--overwrite").exit_code == 0
    assert json.loads((out / "dataset.json").read_text())["generator"]["mode"] == "realistic"


@pytest.mark.parametrize("args, words", [
    (["--start", "2021-02-30"], ["--start", "2021-02-30", "YYYY-MM-DD"]),
    (["--end", "yesterday"], ["--end", "yesterday"]),
    (["--start", "2021-03-01", "--end", "2021-02-01"], ["after"]),
    (["--mode", "fair"], ["--mode", "fair", "realistic"]),
    (["--symbols", "SPY,,QQQ"], ["--symbols"]),
    (["--symbols", "spy"], ["--symbols", "spy"]),
    (["--symbols", "SPY,SPY"], ["SPY", "more than once"]),
    (["--mode", "planted"], ["--plant"]),
    (["--plant", "missing.yaml"], ["missing.yaml"]),
    (["--mode", "null", "--plant", str(REPO / "configs" / "planted_example.yaml")], ["--mode null", "--mode planted"]),
    (["--start", "2021-01-02", "--end", "2021-01-03"], ["no trading days"]),
])
def test_synth_bad_arguments(tmp_path, args, words):
    base = dict(zip(GOOD[::2], GOOD[1::2]))
    base.update(dict(zip(args[::2], args[1::2])))
    flat = [x for kv in base.items() for x in kv]
    _one_line_error(_run("data", "synth", "--out", str(tmp_path / "out"), *flat), *words)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path, "out")


@pytest.mark.parametrize("text, words", [
    ("plants: [", ["not valid YAML", "line"]),
    ("- 1\n- 2", ["expected a mapping"]),
    ("plants: []", ["plants"]),
    ("plants:\n  - name: a\n    favours: [short_put]\n    right: X\n    dte: [20, 45]\n    abs_delta: [0.1, 0.3]\n"
     "    regimes: [calm]\n    vol_points: 4", ["plants.0.right", "'X'"]),
    ("plants:\n  - name: a\n    favours: [short_put]\n    right: P\n    dte: [45, 20]\n    abs_delta: [0.1, 0.3]\n"
     "    regimes: [calm]\n    vol_points: 4", ["plants.0.dte", "min <= max"]),
    ("plants:\n  - name: a\n    favours: [short_put]\n    right: P\n    dte: [20, 45]\n    abs_delta: [0.1, 0.3]\n"
     "    regimes: [panic]\n    vol_points: 4", ["plants.0.regimes.0", "panic"]),
    ("plants:\n  - name: a\n    favours: [short_put]\n    right: P\n    dte: [20, 45]\n    abs_delta: [0.1, 0.3]\n"
     "    regimes: [calm]\n    vol_points: 4\n    colour: red", ["plants.0.colour", "Extra"]),
    ("plants:\n  - name: a\n    favours: [short_put]\n    right: P\n    dte: [20, 45]\n    abs_delta: [0.1, 0.3]\n"
     "    regimes: [calm]", ["plants.0.vol_points", "required"]),
])
def test_malformed_plant_files(tmp_path, text, words):
    plant = tmp_path / "plant.yaml"
    plant.write_text(text)
    r = _run("data", "synth", "--out", str(tmp_path / "out"), *GOOD, "--mode", "planted", "--plant", str(plant))
    _one_line_error(r, str(plant), *words)
    assert not (tmp_path / "out").exists()


def test_plant_file_format():
    (plant,) = load_plants(REPO / "configs" / "planted_example.yaml")
    assert (plant.right, plant.dte, plant.abs_delta, plant.regimes, plant.vol_points) == ("P", (20, 45), (0.15, 0.35), ("calm",), 4.0)
    assert "short_put" in plant.favours and plant.applies_to("QQQ")
    two = parse_plants({"plants": [plant.model_dump(), {**plant.model_dump(), "name": "b", "right": "C"}]})
    assert [p.right for p in two] == ["P", "C"]
    with pytest.raises(PlantError, match="unique"):
        parse_plants({"plants": [plant.model_dump(), plant.model_dump()]})


def test_unwritable_output(tmp_path, monkeypatch):
    # the suite may run as root (who can write anywhere), so deny write access explicitly
    import backtest.store

    monkeypatch.setattr(backtest.store.os, "access", lambda path, mode: False)
    _one_line_error(_run("data", "synth", "--out", str(tmp_path / "out"), *GOOD), "not writable")
    _no_leftovers(tmp_path, "out")


def test_output_parent_missing_or_file(tmp_path):
    _one_line_error(_run("data", "synth", "--out", str(tmp_path / "no" / "out"), *GOOD), "does not exist")
    (tmp_path / "afile").write_text("x")
    _one_line_error(_run("data", "synth", "--out", str(tmp_path / "afile"), *GOOD, "--overwrite"), "afile", "is a file")
    assert (tmp_path / "afile").read_text() == "x"


def test_click_usage_errors_end_in_one_error_line(tmp_path):
    r = _run("data", "synth", "--out", str(tmp_path / "o"), *GOOD, "--seed", "-1")
    assert r.exit_code == 2
    assert [ln for ln in r.output.splitlines() if ln.startswith("Error")] == [r.output.strip().splitlines()[-1]]
    assert "--seed" in r.output.strip().splitlines()[-1]


def test_stats_bad_input(tmp_path):
    _one_line_error(_run("data", "stats", str(tmp_path)), "dataset.json")


def test_demo_generates_then_reuses(tmp_path, monkeypatch):
    from discovery.cli import demo as demo_mod

    monkeypatch.setattr(demo_mod, "DEMO_MARKET", {**demo_mod.DEMO_MARKET, "start": "2021-01-04", "end": "2021-02-26"})
    # two months are too short for discovery's folds: this test is about the market steps
    monkeypatch.setattr(demo_mod, "STEPS", tuple(s for s in demo_mod.STEPS if s is not demo_mod.discover_structures))
    monkeypatch.chdir(tmp_path)  # where the tracking sink's spool (and MLflow's local store) would go
    r = _run("demo", "--out", str(tmp_path / "demo"))
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "mlflow-spool").exists()  # a sink that never started a run leaves nothing
    assert "synthesizing" in r.output and "mean 30-day ATM IV" in r.output and "validation" in r.output
    created = json.loads((tmp_path / "demo" / "data" / "dataset.json").read_text())["created"]
    r = _run("demo", "--out", str(tmp_path / "demo"))
    assert "reusing" in r.output and "quarantine_applied=True" not in r.output  # a reused market is left as is
    assert json.loads((tmp_path / "demo" / "data" / "dataset.json").read_text())["created"] == created
