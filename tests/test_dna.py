import dataclasses
import json

import pytest

from backtest.dna import (
    GENE_BOUNDS, SEED_RESULT_KEYS, DNAError, StructureDNA, StructureType, canonical, relevant_genes,
    repair, validate,
)


def test_eighteen_types_with_stable_codes():
    assert len(StructureType) == 18
    assert [t.code for t in StructureType] == list(range(18))
    assert StructureType.parse("IRON_CONDOR") is StructureType.IRON_CONDOR
    assert StructureType.parse("StructureType.CALENDAR_PUT") is StructureType.CALENDAR_PUT


def test_json_round_trip_and_hashable():
    dna = StructureDNA(StructureType.IRON_CONDOR, entry_regime=[2, 0], delta_breach=0.4)
    again = StructureDNA.from_json(dna.to_json())
    assert again == dna and hash(again) == hash(dna)
    assert json.loads(dna.to_json())["entry_regime"] == [2, 0]
    assert {dna, again} == {dna}


def test_partial_dict_gets_defaults():
    dna = StructureDNA.from_dict({"structure_type": "short_put", "front_dte_min": 20})
    assert (dna.front_dte_max, dna.profit_target_pct, dna.dte_exit, dna.max_positions) == (45, 0.5, 7, 1)


def test_seed_output_entry_loads():
    entry = {"rank": 1, "structure_type": "long_strangle", "front_dte_min": 21, "front_dte_max": 35,
             "long_strike_delta": 0.30, "short_strike_delta": 0.30, "entry_regime": [0, 2],
             "profit_target_pct": 0.75, "stop_loss_pct": 0.50, "backtest_sharpe": 1.87,
             "backtest_return_pct": 234.5, "win_rate_pct": 62.3, "n_trades": 145}
    dna = StructureDNA.from_dict(entry, ignore=SEED_RESULT_KEYS)
    assert dna.entry_regime == (0, 2) and dna.long_strike_delta == 0.30


def test_every_problem_in_one_message():
    with pytest.raises(DNAError) as exc:
        StructureDNA.from_dict({"structure_type": "calendar_call", "colour": 1, "front_dte_min": 30,
                                "front_dte_max": 60, "back_dte_min": 45, "back_dte_max": 90,
                                "long_strike_delta": 1.5, "sized": 2})
    msg = str(exc.value)
    for part in ("unknown key 'colour'", "unknown key 'sized'"):
        assert part in msg
    with pytest.raises(DNAError) as exc:
        StructureDNA.from_dict({"structure_type": "calendar_call", "front_dte_min": 30, "front_dte_max": 60,
                                "back_dte_min": 45, "back_dte_max": 90, "long_strike_delta": 1.5,
                                "spread_width_strikes": 2.5})
    msg = str(exc.value)
    assert "long_strike_delta: 1.5 outside [0.01, 0.99]" in msg
    assert "spread_width_strikes: 2.5 is not an integer" in msg
    with pytest.raises(DNAError, match="back month not after front month"):
        StructureDNA.from_dict({"structure_type": "calendar_call", "front_dte_min": 30, "front_dte_max": 60,
                                "back_dte_min": 45, "back_dte_max": 90})
    with pytest.raises(DNAError, match="not a structure type.*iron_condor"):
        StructureDNA.from_dict({"structure_type": "butterfly"})
    with pytest.raises(DNAError, match="missing key 'structure_type'"):
        StructureDNA.from_dict({})


def test_repair_makes_any_genome_valid():
    broken = StructureDNA(StructureType.DIAGONAL_PUT, front_dte_min=60, front_dte_max=20, back_dte_min=10,
                          back_dte_max=5, long_strike_delta=1.7, short_strike_delta=-0.2,
                          spread_width_strikes=0, dte_exit=90, max_position_pct=0.5,
                          max_total_risk_pct=0.2, min_iv_percentile=80, max_iv_percentile=20,
                          entry_regime=[3, 1, 3])
    assert len(validate(broken)) > 3
    fixed = repair(broken)
    assert validate(fixed) == []
    assert (fixed.front_dte_min, fixed.front_dte_max) == (20, 60)
    assert fixed.back_dte_min == 61 and fixed.back_dte_max > 61
    assert fixed.dte_exit == 59 and fixed.entry_regime == (1, 3)
    assert repair(fixed) == fixed


def test_canonical_ignores_irrelevant_genes():
    a = StructureDNA(StructureType.LONG_CALL, short_strike_delta=0.1, spread_width_strikes=9, back_dte_min=100,
                     back_dte_max=200, delta_breach=0.5)
    b = StructureDNA(StructureType.LONG_CALL)
    assert a != b and canonical(a) == canonical(b)
    assert "spread_width_strikes" in relevant_genes("iron_condor")
    assert "back_dte_min" in relevant_genes(StructureType.DIAGONAL_CALL)
    assert "delta_breach" not in relevant_genes("long_straddle")
    assert set(GENE_BOUNDS) <= {f.name for f in dataclasses.fields(StructureDNA)}
