"""`osd bench`: a suite whose input data are absent fails with one line, or is skipped and named
with --skip-unavailable (the image build pre-warms numba without ../shared)."""
from __future__ import annotations

from click.testing import CliRunner

from discovery.cli import main
from discovery.cli.bench import load_suite


def test_a_suite_without_its_data_fails_or_is_skipped_and_named(tmp_path, monkeypatch):
    load_suite("validate")  # puts the checkout's benchmarks on the path
    from benchmarks import _long_sample

    monkeypatch.setattr(_long_sample, "SPX_SAMPLE_DIR", tmp_path / "absent")
    runner = CliRunner()
    failed = runner.invoke(main, ["bench", "--suite", "validate", "--quick"])
    assert failed.exit_code != 0
    assert failed.output.strip().splitlines() == [f"Error: SPX sample not found in {tmp_path / 'absent'} (set OSD_SHARED)"]
    skipped = runner.invoke(main, ["bench", "--suite", "validate", "--quick", "--skip-unavailable"])
    assert skipped.exit_code == 0
    assert "[validate] skipped: SPX sample not found" in skipped.output
