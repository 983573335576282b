"""benchmarks/record.py: what a benchmark printed is written down with its command, machine and date."""

import sys

from benchmarks import record


def test_a_successful_run_writes_its_output_a_failed_one_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["benchmarks/demo.py", "--rounds", "3"])

    def table() -> int:
        print("format   seconds\nfloat32     5.38")
        return 0

    assert record.run(table, "demo", out=tmp_path) == 0
    shown = capsys.readouterr().out
    assert "float32     5.38" in shown and f"results: {tmp_path / 'demo.md'}" in shown  # still on the console
    text = (tmp_path / "demo.md").read_text()
    assert text.startswith("# demo\n")
    assert "- command: `.venv/bin/python benchmarks/demo.py --rounds 3`" in text
    assert "- machine: " in text and " cores, " in text and "- date: 20" in text
    assert "```text\nformat   seconds\nfloat32     5.38\n```" in text

    assert record.run(lambda: 1, "failed", out=tmp_path) == 1
    assert not (tmp_path / "failed.md").exists()
