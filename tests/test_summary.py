"""``python -m pynet_tf.summary``: the pyramid table, and its errors for bad flags."""

import pytest

from pynet_tf.summary import main, pyramid_rows


def test_rows_follow_the_pyramid():
    rows, total = pyramid_rows(base_filters=4, height=32, width=48)
    assert [row.level for row in rows] == [5, 4, 3, 2, 1, 0]
    assert [row.output_hw for row in rows] == [(2, 3), (4, 6), (8, 12), (16, 24), (32, 48), (64, 96)]
    params = [row.params for row in rows]
    assert params[:5] == sorted(params[:5])  # each finer level contains the coarser trunk
    assert max(params) < total  # the six-output model also holds every level's head


def test_cli_prints_table(capsys):
    assert main(["--base-filters", "4", "--input", "32x48"]) == 0
    out = capsys.readouterr().out
    assert "packed input 32x48x4" in out and "64x96" in out and "all six outputs" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input", "30x48"], "--input: packed input 30x48 is not a multiple of 16"),
        (["--input", "big"], "expected HEIGHTxWIDTH"),
        (["--base-filters", "0"], "--base-filters must be a positive integer"),
    ],
)
def test_cli_bad_flags_exit_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
