"""python -m android_bench.report on real, small results.

Module fixtures: PyNET level 4 at base width 2 with informative weights, exported (export_model: real sidecars
with fidelity) to float32, fp16 and int8 at 96x96 packed (output 12x12: SSIM's 11-pixel window fits), host-
benchmarked through LiteRT (cpu, xnnpack); and the third-party MicroISP (1x1500x2000x4, no sidecar),
benchmarked once on the host (one inference, built-in kernels: ~20 s here). The report is made once from both,
through the CLI, and its numbers are checked against the results files and the sidecars on disk.
"""

import base64
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from model_fixtures import informative
from PIL import Image

from android_bench import report as report_cli
from android_bench import run
from calibration.crops import build_calibration
from export.formats import INT16X8_OPS, STATUS_OK
from export.pipeline import export_model
from pynet_tf.nets.pynet.model import build_pynet
from reporting import plots, report
from reporting import rows as report_rows
from reporting.rows import pareto_front, tflite_facts

MICROISP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "third_party" / "MicroISP.tflite"
SHAPE = (96, 96)
FORMATS = ("float32", "fp16", "int8")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CLASSICAL = "classical ISP (oracle metadata)"
"""The classical ISP that scores the samples' synthetic RAW (pynet_tf.held_out.BASELINES)."""


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("report")
    keras.utils.set_random_seed(0)
    informative(build_pynet(4, base_filters=2)).save(folder / "model.keras")
    build_calibration("samples", 8, SHAPE, candidates=16).save(folder / "calibration.npz")
    exported = export_model(
        folder / "model.keras",
        FORMATS,
        out=folder / "exported",
        input_shape=SHAPE,
        calibration=folder / "calibration.npz",
    )
    assert [result.status for result in exported] == [STATUS_OK] * len(FORMATS), [r.message for r in exported]
    flags = ["--delegates", "cpu,xnnpack", "--threads", "1", "--warmup", "1", "--runs", "5"]
    results = folder / "results"
    assert run.main(["--host", "--models", str(folder / "exported"), *flags, "--out", str(results)]) == 0
    sidecars = {r.path.name: json.loads(Path(f"{r.path}.json").read_text()) for r in exported}
    return {"folder": folder, "results": results, "model": folder / "model.keras", "sidecars": sidecars}


@pytest.fixture(scope="module")
def microisp(tmp_path_factory) -> Path:
    """The third-party model's results folder: benchmarked once for every test here."""
    out = tmp_path_factory.mktemp("microisp")
    flags = ["--delegates", "cpu", "--threads", "2", "--warmup", "0", "--runs", "1", "--timeout", "300"]
    assert run.main(["--host", "--models", str(MICROISP), *flags, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def made(bench, microisp, tmp_path_factory) -> dict:
    """The report of both, through the CLI (crops included)."""
    out = tmp_path_factory.mktemp("made") / "report"
    assert report_cli.main([str(bench["results"]), str(microisp), "-o", str(out)]) == 0
    return {
        "out": out,
        "json": json.loads((out / "report.json").read_text()),
        "md": (out / "report.md").read_text(),
        "html": (out / "report.html").read_text(),
    }


def results_rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("*.json")) for row in json.loads(path.read_text())["rows"]]


def shown(cell: str, value: float) -> bool:
    """The table cell is ``value`` rounded to the cell's decimals."""
    decimals = len(cell.partition(".")[2])
    return abs(float(cell) - value) <= 0.5 * 10**-decimals + 1e-12


def md_row(markdown: str, row_id: str) -> list[str]:
    (line,) = [line for line in markdown.splitlines() if line.startswith(f"| {row_id} | ")]
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def md_cell(markdown: str, row_id: str, header: str) -> str:
    return dict(zip([name for name, _ in report.COLUMNS], md_row(markdown, row_id)))[header]


def test_rows_match_the_results_and_the_sidecars(made, bench, microisp):
    rows = made["json"]["rows"]
    measured = results_rows(bench["results"]) + results_rows(microisp)
    assert len(rows) == len(measured) == len(FORMATS) * 2 + 1
    headers = [name for name, _ in report.COLUMNS]
    by_key = {(r["model"]["path"], r["delegate"], r["threads"]): r for r in measured}
    for row in rows:
        source = by_key[(row["path"], row["delegate"], row["threads"])]
        timings, memory = source["timings"], source["memory"]
        percentiles = timings["percentiles_ms"]
        expected = {
            "init_ms": timings["init_ms"],
            "mean_ms": timings["inference_avg_ms"],
            "median_ms": percentiles["p50"],
            "p95_ms": percentiles["p95"],
            "std_ms": timings["inference_std_ms"],
            "peak_mb": memory["peak_mb"],
            "growth_mb": memory["overall_mb"],
            "size_mb": source["model"]["size_mb"],
            "status": source["status"],
        }
        assert {key: row[key] for key in expected} == expected
        cells = dict(zip(headers, md_row(made["md"], row["id"])))
        for header, key in (
            ("init ms", "init_ms"),
            ("mean ms", "mean_ms"),
            ("median ms", "median_ms"),
            ("p95 ms", "p95_ms"),
            ("peak MiB", "peak_mb"),
            ("MB", "size_mb"),
        ):
            assert shown(cells[header], expected[key]), (header, cells[header], expected[key])
        assert cells["file"] == row["file"] and cells["threads"] == str(row["threads"])
        side = bench["sidecars"].get(row["file"])
        if side is None:  # MicroISP: no sidecar, precision read off its tensors, accuracy unknown
            assert row["file"] == MICROISP.name
            assert (row["precision"], row["precision_from"]) == ("float32", "tensor types")
            assert (row["input_shape"], row["output_shape"]) == ("1500x2000", "3000x4000")
            accuracy = (
                "psnr_vs_float",
                "ssim_vs_float",
                "ms_ssim_vs_float",
                "psnr_vs_gt",
                "ssim_vs_gt",
                "ms_ssim_vs_gt",
                "speedup_vs_fp32",
            )
            assert all(row[key] is None for key in accuracy) and "no sidecar" in row["accuracy_note"]
            scores = (
                "PSNR vs float",
                "SSIM vs float",
                "MS-SSIM vs float",
                "PSNR vs GT",
                "SSIM vs GT",
                "MS-SSIM vs GT",
            )
            assert [cells[h] for h in scores] == ["–"] * len(scores)
            assert cells["precision"] == "float32 †"
            continue
        fidelity = side["fidelity"]
        assert (row["precision"], row["precision_from"]) == (side["export_format"]["name"], "sidecar")
        versus_float, truth = fidelity["vs_float"], fidelity["vs_ground_truth"]
        assert (row["psnr_vs_float"], row["ssim_vs_float"]) == (versus_float["psnr"], versus_float["ssim"])
        assert (row["psnr_vs_gt"], row["ssim_vs_gt"]) == (truth["file"]["psnr"], truth["file"]["ssim"])
        assert row["ms_ssim_vs_float"] == versus_float["ms_ssim"]
        assert row["ms_ssim_vs_gt"] == truth["file"]["ms_ssim"]
        assert row["ms_ssim_vs_gt"] is not None  # the 12x12 output fits the 11-pixel window (one scale)
        assert shown(cells["PSNR vs float"], fidelity["vs_float"]["psnr"])
        assert shown(cells["SSIM vs GT"], truth["file"]["ssim"])
        assert shown(cells["MS-SSIM vs float"], versus_float["ms_ssim"])
        assert shown(cells["MS-SSIM vs GT"], truth["file"]["ms_ssim"])
        # speed-up: the float32 file's mean over this row's, same delegate and threads
        (fp32,) = [
            r
            for r in rows
            if r["precision"] == "float32"
            and r["delegate"] == row["delegate"]
            and r["source"] == str(bench["model"])
        ]
        assert row["speedup_vs_fp32"] == fp32["mean_ms"] / row["mean_ms"]
        assert shown(cells["speed-up vs fp32"].removesuffix("x"), fp32["mean_ms"] / row["mean_ms"])
    # two sections: the PyNET files (96x96 -> 12x12) and MicroISP; nothing is compared across them
    assert len({row["section"] for row in rows}) == 2
    assert any("MicroISP.tflite: no crops: no sidecar" in line for line in made["md"].splitlines())


def test_which_file_to_ship(made, bench):
    rows = [row for row in made["json"]["rows"] if row["file"] in bench["sidecars"]]
    (section,) = {row["section"] for row in rows}

    def expected(min_psnr: float, delegate: str | None) -> str | None:
        eligible = [r for r in rows if r["psnr_vs_float"] >= min_psnr and delegate in (None, r["delegate"])]
        working = [r for r in eligible if not r["not_working_isp"]]  # preferred (the flag's own test: below)
        return min(working or eligible, key=lambda r: r["mean_ms"])["id"] if eligible else None

    def chosen(choices: list[dict], delegate: str | None) -> str | None:
        (choice,) = [c for c in choices if c["section"] == section and c["delegate"] == delegate]
        return choice["row"]

    psnr = {row["precision"]: row["psnr_vs_float"] for row in rows}
    # fp32 ~115 dB, fp16 ~58 dB, int8 ~10 dB vs float here (measured): each bar admits a different set
    assert psnr["float32"] > psnr["fp16"] > report.DEFAULT_MIN_PSNR > psnr["int8"]
    for delegate in (None, "cpu", "xnnpack"):
        assert chosen(made["json"]["ship"], delegate) == expected(report.DEFAULT_MIN_PSNR, delegate)
    for bar in (0.0, (psnr["fp16"] + psnr["float32"]) / 2):
        again = report.build([bench["results"]], min_psnr=bar, crops=False)
        for delegate in (None, "cpu", "xnnpack"):
            assert chosen(again.ship, delegate) == expected(bar, delegate)
    none = report.build([bench["results"]], min_psnr=500.0, crops=False)
    (overall,) = [c for c in none.ship if c["delegate"] is None]
    assert overall["row"] is None and "no row reaches 500 dB" in overall["why"]
    assert "overall: nothing to ship" in report.to_markdown(none)


def test_pareto_front_by_hand():
    points = {
        "a": (1.0, 10.0),
        "b": (2.0, 20.0),
        "c": (2.0, 15.0),
        "d": (3.0, 20.0),
        "e": (4.0, 30.0),
        "f": (4.0, 30.0),
        "g": (0.5, math.inf),
        "h": (5.0, 1.0),
    }
    # g is fastest and identical to the float model: it dominates everything slower that is not better
    assert pareto_front(points) == {"g"}
    del points["g"]
    # c and d lose to b (same latency / same PSNR), h to everyone; the equal pair e, f dominate each other not
    assert pareto_front(points) == {"a", "b", "e", "f"}


@pytest.mark.parametrize(
    ("file", "source", "third_party", "expected"),
    [
        (
            "d_level0_64x64_int8.tflite",
            {"model": "runs/demo_mobile/level_0/model.keras", "arch": "mobile"},
            False,
            "demo_mobile (mobile)",
        ),
        ("x.tflite", {"model": "runs/demo/final/model.keras", "arch": "pynet"}, False, "demo (pynet)"),
        ("x.tflite", {"model": "/tmp/net.keras", "arch": "pynet"}, False, "net (pynet)"),
        ("MicroISP_96x96.tflite", {"model": None, "third_party": "/data/MicroISP.tflite"}, True, "MicroISP"),
        ("MicroISP.tflite", {}, False, "MicroISP"),  # no sidecar
    ],
)
def test_network_names(file, source, third_party, expected):
    assert report_rows.network_name(file, source, third_party) == expected


def test_plot_colours_by_network_where_a_section_holds_several():
    rows = [{"network": n, "delegate": d} for n, d in (("a", "gpu"), ("b", "gpu"), ("a", "cpu"))]
    assert plots._groups(rows) == ["a / gpu", "b / gpu", "a / cpu"]
    assert plots._groups(rows[:2]) == ["a", "b"]
    assert plots._groups([rows[0], rows[2]]) == ["gpu", "cpu"]
    assert plots._groups(rows[:1]) == ["gpu"]


def test_pareto_front_on_the_report(made):
    rows = {row["id"]: row for row in made["json"]["rows"]}
    for front in made["json"]["pareto"].values():
        metric = front["metric"]
        assert metric == "psnr_vs_gt" or not front["points"]  # every sidecar here has ground truth
        on = sorted((rows[i] for i in front["front"]), key=lambda r: r["mean_ms"])
        assert [r[metric] for r in on] == sorted(r[metric] for r in on) and len(
            {r[metric] for r in on}
        ) == len(on)
        for point in set(front["points"]) - set(front["front"]):
            row = rows[point]
            assert any(f["mean_ms"] <= row["mean_ms"] and f[metric] >= row[metric] for f in on), point
        assert all(rows[i]["pareto"] is (i in front["front"]) for i in front["points"])
    micro = [row for row in rows.values() if row["file"] == MICROISP.name]
    assert micro and all(row["pareto"] is None for row in micro)  # no accuracy: not plotted


def test_crops_are_the_sidecars_held_out_example(made, bench):
    (crop,) = [c for c in made["json"]["crops"] if c["source"] == str(bench["model"])]
    assert crop["reason"] is None and crop["box"] == [0, 0, 12, 12]
    assert [s["precision"] for s in crop["scores"]] == list(FORMATS)
    for score in crop["scores"]:
        first = bench["sidecars"][score["file"]]["fidelity"]["per_image"][0]
        assert crop["example"] == first["name"]
        # the same example, runner, clipping and metric as export.fidelity: equal (measured: bit for bit)
        assert score["psnr_vs_float"] == pytest.approx(first["vs_float"]["psnr"], abs=1e-9)
        assert score["psnr_vs_gt"] == pytest.approx(first["vs_ground_truth"]["file"]["psnr"], abs=1e-9)
    # the classical ISP's panel: its render of the same example, scored as the sidecar scored it
    classical = first["vs_ground_truth"]["classical_isp"]["psnr"]
    assert crop["classical_isp"] == {"label": "classical ISP (oracle metadata)", "psnr_vs_gt": classical}
    assert f"example {first['name']} (whole output): {CLASSICAL} {classical:.2f} dB vs GT; " in made["md"]
    (micro,) = [c for c in made["json"]["crops"] if c["files"] == [MICROISP.name]]
    assert "no sidecar" in micro["reason"]
    figures = made["json"]["figures"]["crops"]
    assert len(figures) == 1
    with Image.open(made["out"] / figures[0]) as image:
        assert image.format == "PNG" and image.width > 600


def test_missing_source_model_skips_crops_with_the_reason(bench, tmp_path):
    (path,) = bench["results"].glob("*.json")
    document = json.loads(path.read_text())
    for row in document["rows"]:
        row["sidecar"]["source"]["model"] = str(tmp_path / "gone.keras")
    document["run"]["complete"] = False
    document["rows"][0].update(status="error", error="delegate refused: bad | op", timings=None)
    document["rows"][1]["sidecar"]["file"]["sha256"] = "0" * 64  # a sidecar left beside another file
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / path.name).write_text(json.dumps(document))
    (tmp_path / "results" / "exported.tflite.json").write_text(
        json.dumps({"format": "pynet-tf export sidecar"})
    )
    made = report.build([tmp_path / "results"], crops=True)
    (crop,) = [crop for crop in made.crops if crop.source is not None]
    assert crop.images == [] and crop.reason.startswith(
        f"source model {tmp_path / 'gone.keras'} not found here"
    )
    markdown = report.to_markdown(made)
    assert f"no crops: source model {tmp_path / 'gone.keras'} not found here" in markdown
    assert "did not complete" in markdown and "skipped " in markdown and "exported.tflite.json" in markdown
    assert md_row(markdown, "1")[-1] == "error: delegate refused: bad \\| op"  # one table cell, pipe escaped
    assert made.rows[0]["pareto"] is None and made.rows[0]["speedup_vs_fp32"] is None
    stale = made.rows[1]
    assert "describes another file" in stale["accuracy_note"] and stale["psnr_vs_float"] is None
    assert stale["precision_from"] == "tensor types"
    assert stale["precision"] == document["rows"][1]["sidecar"]["export_format"]["name"]


def test_html_is_self_contained(made):
    assert sorted(path.name for path in made["out"].iterdir()) == [
        "figures",
        "report.html",
        "report.json",
        "report.md",
    ]  # no temporary file left
    page = made["html"]
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    figures = [name for names in made["json"]["figures"].values() for name in names]
    assert len(sources) == len(figures) >= 4  # Pareto + latency (PyNET), latency (MicroISP), crops
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    references = sum(len(entries) for entries in made["json"]["classical_isp"].values())
    assert page.count("<tr class=") == len(made["json"]["rows"]) + references == len(made["json"]["rows"]) + 1


# CI installs Chromium (.ci/run), so there a missing browser fails instead of skipping
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium not installed (Debian: apt-get install chromium)",
)
def test_html_renders_in_headless_chromium(made, tmp_path):
    page = (made["out"] / "report.html").resolve().as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1400,1800", page],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), np.float32)
    assert pixels.shape == (1800, 1400)
    # a blank page is one grey level; text, table borders and plots spread them (measured std ~60)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", page], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    references = sum(len(entries) for entries in made["json"]["classical_isp"].values())
    assert dom.count("<table>") == 2 and dom.count("<tr class=") == len(made["json"]["rows"]) + references
    assert dom.count("data:image/png;base64,") == sum(len(v) for v in made["json"]["figures"].values())


def _tiny_converted(kind: str) -> bytes:
    """A 3x3 conv + ReLU converted by the TFLite converter itself, as each precision (32 filters: the
    converter leaves weights of fewer than 1024 elements in float under dynamic-range quantization)."""
    model = keras.Sequential(
        [keras.Input((8, 8, 4), batch_size=1), keras.layers.Conv2D(32, 3, activation="relu")]
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if kind in ("int8", "int16x8"):
        rng = np.random.default_rng(0)
        converter.representative_dataset = lambda: ([rng.random((1, 8, 8, 4), np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if kind == "int8" else INT16X8_OPS
        ]
    return converter.convert()


@pytest.mark.parametrize("kind", ["float32", "fp16", "dynamic", "int8", "int16x8"])
def test_precision_read_off_tensor_types(kind, tmp_path):
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(_tiny_converted(kind))
    assert tflite_facts(path) == (kind, "8x8", "6x6")


def test_a_qat_file_is_int8_noted_with_its_fine_tuning():
    side = {"export_format": {"name": "qat"}, "qat": {"steps": 50}, "settings": {"io": "uint8"}}
    assert report_rows._precision(side) == ("int8", "QAT 50 steps, uint8 io")
    plain = {"export_format": {"name": "int8"}, "settings": {"io": "float32"}}
    assert report_rows._precision(plain) == ("int8", None)


def test_precision_of_the_exports_and_an_unreadable_file(bench, tmp_path):
    for name, side in bench["sidecars"].items():
        assert tflite_facts(bench["folder"] / "exported" / name)[0] == side["export_format"]["name"]
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer")
    assert tflite_facts(tmp_path / "junk.tflite") == (None, None, None)
    assert tflite_facts(tmp_path / "absent.tflite") == (None, None, None)


def _write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def _results(tmp_path: Path, **changes) -> Path:
    document = {"format": "pynet-tf benchmark results", "version": 1, "run": {}, "rows": [], **changes}
    return _write(tmp_path, "r.json", json.dumps(document))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda t: [str(t / "nope")], "nope: no such file or folder; give the --out folder"),
        (lambda t: [str(t)], "the folder holds no benchmark results file"),
        (
            lambda t: [str(_results(t, format="pynet-tf export sidecar"))],
            "r.json: not a benchmark results file",
        ),
        (
            lambda t: [str(_results(t, version=99))],
            "r.json: results schema version 99, but this report reads version 1",
        ),
        (lambda t: [str(_results(t, rows=[{"model": {}}]))], "r.json: row 1 lacks delegate, threads, status"),
        (lambda t: [str(_write(t, "x.json", "{oops"))], "x.json: not JSON"),
        (lambda t: [str(_results(t)), "--min-psnr", "nan"], "--min-psnr nan: give a finite number of dB"),
        (lambda t: [str(_results(t)), "-o", str(_results(t))], "r.json: a file is in the way"),
    ],
)
def test_bad_input_is_one_line_error(make, expected, tmp_path, capsys):
    assert report_cli.main(make(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


def test_a_folder_without_a_readable_results_file_says_which_files_and_why(tmp_path, capsys):
    """The reason each file was passed over is the one-line reason given when that file is named itself."""
    folder = tmp_path / "results"
    folder.mkdir()
    corrupt = _write(
        folder, "20261206T101010Z_FAKE0001.json", '{"format": "pynet-tf benchmark results", "rows": ['
    )
    sidecar = _results(folder, format="pynet-tf export sidecar")
    reasons = {}
    for path in (corrupt, sidecar):
        assert report_cli.main([str(path)]) == 2
        reasons[path] = capsys.readouterr().err.removeprefix(f"error: {path}: ").partition("; give ")[0]
    assert reasons[corrupt].startswith("not JSON (")
    assert reasons[sidecar].startswith("not a benchmark results file")
    assert report_cli.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}: ") and err.count("\n") == 1, err
    assert all(f"{path}: {reason}" in err for path, reason in reasons.items()), err
    assert "holds no benchmark results file" not in err


def test_without_ground_truth_the_plot_uses_psnr_vs_float(bench, tmp_path):
    (path,) = bench["results"].glob("*.json")
    document = json.loads(path.read_text())
    for row in document["rows"]:
        fidelity = row["sidecar"]["fidelity"]
        fidelity["vs_ground_truth"] = {}
        if row["sidecar"]["export_format"]["name"] == "float32":
            fidelity["vs_float"]["psnr"] = math.inf  # identical outputs, as json writes them: Infinity
    _write(tmp_path, "r.json", json.dumps(document))
    made = report.build([tmp_path / "r.json"], crops=False)
    ((section, front),) = made.fronts.items()
    assert front["metric"] == "psnr_vs_float" and len(front["points"]) == len(document["rows"])
    fp32 = [row for row in made.rows if row["precision"] == "float32"]
    assert all(row["psnr_vs_float"] == math.inf and row["psnr_vs_gt"] is None for row in fp32)
    headers = [name for name, _ in report.COLUMNS]
    assert dict(zip(headers, md_row(report.to_markdown(made), fp32[0]["id"])))["PSNR vs float"] == "∞"
    assert made.figures[section][0].png.startswith(b"\x89PNG") and "∞" in report.to_html(made)
    assert "no crops" not in report.to_markdown(made) and "not made (--no-crops)" in report.to_markdown(made)


# --- the classical ISP: reference row, chart line, "not a working ISP" -------------------------------------


def _sidecar_rows(bench) -> tuple[dict, dict]:
    """(a results document of the PyNET files, with its path) to edit for one test."""
    (path,) = bench["results"].glob("*.json")
    return json.loads(path.read_text()), path


def _pareto_figures(monkeypatch) -> list:
    """Every Pareto figure the report draws from now on (plots.pareto_figure, recorded)."""
    drawn, original = [], plots.pareto_figure

    def record(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "pareto_figure", record)
    return drawn


def test_the_classical_isp_is_each_sections_reference_row(made, bench):
    rows = [row for row in made["json"]["rows"] if row["file"] in bench["sidecars"]]
    (section,) = {row["section"] for row in rows}
    truth = bench["sidecars"][rows[0]["file"]]["fidelity"]["vs_ground_truth"]["classical_isp"]
    (reference,) = made["json"]["classical_isp"][section]
    assert reference == {
        "label": CLASSICAL,
        "held_out_data": "samples",
        "held_out_seed": 0,
        "images": 2,
        "psnr_vs_gt": truth["psnr"],
        "ssim_vs_gt": truth["ssim"],
        "ms_ssim_vs_gt": truth["ms_ssim"],
        "rows": [row["id"] for row in rows],
    }
    (micro,) = {row["section"] for row in made["json"]["rows"]} - {section}
    assert made["json"]["classical_isp"][micro] == []  # MicroISP as shipped: no sidecar, no reference
    cells = dict(zip([name for name, _ in report.COLUMNS], md_row(made["md"], "ref")))
    assert (cells["file"], cells["precision"], cells["mean ms"], cells["PSNR vs float"]) == (
        CLASSICAL,
        "reference",
        "–",
        "–",
    )
    for header, key in (("PSNR vs GT", "psnr"), ("SSIM vs GT", "ssim"), ("MS-SSIM vs GT", "ms_ssim")):
        assert shown(cells[header], truth[key]), header
    status = "reference, not benchmarked: on the 2 held-out images of samples (seed 0) that #"
    assert cells["status"].startswith(status)
    assert made["html"].count('<tr class="reference">') == 1
    assert f'<td class="text">{CLASSICAL}</td>' in made["html"]
    for row in rows:  # each row against it, in dB
        assert row["classical_isp_psnr_vs_gt"] == truth["psnr"]
        assert row["psnr_vs_classical_isp"] == row["psnr_vs_gt"] - truth["psnr"]
        delta = md_cell(made["md"], row["id"], report.VERSUS_CLASSICAL)
        assert shown(delta.split()[0], row["psnr_vs_classical_isp"])


def test_the_pareto_chart_draws_the_classical_isp_as_a_line(bench, monkeypatch):
    drawn = _pareto_figures(monkeypatch)
    made = report.build([bench["results"]], crops=False)
    ((section, (reference,)),) = made.references.items()
    assert made.fronts[section]["metric"] == "psnr_vs_gt"
    (axis,) = drawn[0].axes
    (line,) = [line for line in axis.get_lines() if line.get_label().startswith(CLASSICAL)]
    assert list(line.get_ydata()) == [reference["psnr_vs_gt"]] * 2
    assert line.get_label() == f"{CLASSICAL}: {reference['psnr_vs_gt']:.2f} dB"
    assert line.get_label() in [text.get_text() for text in axis.get_legend().get_texts()]
    low, high = axis.get_ylim()
    assert low < min(row["psnr_vs_gt"] for row in made.rows) and high > reference["psnr_vs_gt"]


def _point(row_id: str, mean_ms: float, psnr: float, precision: str = "float32") -> dict:
    return {
        "id": row_id,
        "mean_ms": mean_ms,
        "psnr_vs_gt": psnr,
        "precision": precision,
        "network": "demo",
        "delegate": "xnnpack",
    }


def test_the_accuracy_axis_never_magnifies_noise():
    # README's demo chart: three files within 7 millidecibels of each other (12.286-12.293 dB)
    rows = [_point("1", 17.8, 12.286), _point("2", 17.5, 12.293, "fp16"), _point("3", 20.6, 12.290, "int8")]
    low, high = plots.pareto_figure(rows, "psnr_vs_gt", ["2"], "demo").axes[0].get_ylim()
    assert high - low == pytest.approx(plots.MIN_SPAN_DB) and plots.MIN_SPAN_DB >= 2.0
    assert (low + high) / 2 == pytest.approx((12.286 + 12.293) / 2)
    # with the classical ISP's line 15 dB above, the axis holds both (the gap to scale, the files one level)
    line = {"label": CLASSICAL, "psnr_vs_gt": 27.26, "held_out_data": "samples", "held_out_seed": 0}
    low, high = plots.pareto_figure(rows, "psnr_vs_gt", ["2"], "demo", [line]).axes[0].get_ylim()
    assert low < 12.286 and high > 27.26 and high - low < 1.2 * (27.26 - 12.286)
    # wide data keeps 5% margins; one value, or a line at the data, is widened about its centre
    assert plots.accuracy_limits([10.0, 20.0]) == pytest.approx((9.5, 20.5))
    assert plots.accuracy_limits([30.0]) == pytest.approx((29.0, 31.0))
    assert plots.accuracy_limits([30.0, 30.5, 30.2]) == pytest.approx((29.25, 31.25))


@pytest.mark.parametrize(
    ("below", "flagged"), [(6.0, True), (14.97, True), (5.9, False), (1.0, False), (-3.0, False)]
)
def test_not_a_working_isp_from_6_db_below_the_classical_isp(below, flagged):
    classical = {"psnr": 20.0 + below, "ssim": 0.7, "ms_ssim": 0.9}
    fidelity = {
        "classical_isp": {"label": "classical ISP (grey-world)"},
        "vs_ground_truth": {"file": {"psnr": 20.0}, "classical_isp": classical},
    }
    facts = report_rows._classical_isp(fidelity)
    assert report_rows.NOT_WORKING_ISP_DB == 6.0
    assert facts["not_working_isp"] is flagged and facts["psnr_vs_classical_isp"] == pytest.approx(-below)
    assert facts["classical_isp"] == "classical ISP (grey-world)" and facts["classical_isp_ssim_vs_gt"] == 0.7


def _below_the_classical_isp(document: dict, below: dict[str, float]) -> float:
    """Each row's file scored ``below[precision]`` dB under the classical ISP (its own sidecar, edited);
    returns the classical ISP's PSNR."""
    for row in document["rows"]:
        truth = row["sidecar"]["fidelity"]["vs_ground_truth"]
        precision = row["sidecar"]["export_format"]["name"]
        truth["file"]["psnr"] = truth["classical_isp"]["psnr"] - below[precision]
    return truth["classical_isp"]["psnr"]


def test_a_file_far_below_the_classical_isp_is_flagged_and_not_shipped(bench, tmp_path):
    document, path = _sidecar_rows(bench)
    _below_the_classical_isp(document, {"float32": 1.0, "fp16": 10.0, "int8": 1.0})
    _write(tmp_path, path.name, json.dumps(document))
    made = report.build([tmp_path], crops=False)
    by_precision = {name: [row for row in made.rows if row["precision"] == name] for name in FORMATS}
    assert all(row["not_working_isp"] for row in by_precision["fp16"])
    assert not any(row["not_working_isp"] for row in by_precision["float32"] + by_precision["int8"])
    markdown, page = report.to_markdown(made), report.to_html(made)
    for row in made.rows:
        cell = md_cell(markdown, row["id"], report.VERSUS_CLASSICAL)
        assert cell == ("-10.00 not a working ISP" if row["precision"] == "fp16" else "-1.00")
    assert page.count('<td class="flag">') == len(by_precision["fp16"])
    (fp16_file,) = {row["file"] for row in by_precision["fp16"]}
    assert any(note.startswith(f"{fp16_file}: not a working ISP: ") for note in made.notes())
    # fp16 and float32 both reach the 40 dB bar vs float: the working one ships, however fast fp16 is
    (overall,) = [choice for choice in made.ship if choice["delegate"] is None]
    assert overall["row"] == min(by_precision["float32"], key=lambda row: row["mean_ms"])["id"]
    assert overall["not_working_isp"] is False and "NOT A WORKING ISP" not in markdown


def test_a_ship_choice_that_is_no_working_isp_says_so_first(bench, tmp_path, capsys):
    document, path = _sidecar_rows(bench)
    classical = _below_the_classical_isp(document, {"float32": 7.0, "fp16": 7.0, "int8": 12.0})
    _write(tmp_path, path.name, json.dumps(document))
    made = report.build([tmp_path], crops=False)
    eligible = [row for row in made.rows if row["psnr_vs_float"] >= report.DEFAULT_MIN_PSNR]
    (overall,) = [choice for choice in made.ship if choice["delegate"] is None]
    # nothing at the bar works: the fastest is still named (its precision and delegate), flagged
    assert overall["row"] == min(eligible, key=lambda row: row["mean_ms"])["id"]
    assert overall["not_working_isp"] is True and "none of them is a working ISP" in overall["why"]
    first = f"overall: NOT A WORKING ISP: {overall['file']}"
    assert f"- **{first}" in report.to_markdown(made)
    assert f'<li class="warning">{first}' in report.to_html(made)
    assert f"7.00 dB below the {CLASSICAL} at {classical:.2f} dB on the same 2 held-out images" in (
        report._ship_line(overall)
    )
    assert report_cli.main([str(tmp_path), "-o", str(tmp_path / "report"), "--no-crops"]) == 0
    assert f"ship {first}" in capsys.readouterr().out


def test_sidecars_before_version_5_load_without_a_reference(bench, tmp_path, monkeypatch):
    document, path = _sidecar_rows(bench)
    for row in document["rows"]:
        side = row["sidecar"]
        side["version"] = 4
        del side["fidelity"]["classical_isp"], side["fidelity"]["vs_ground_truth"]["classical_isp"]
        for image in side["fidelity"]["per_image"]:
            del image["vs_ground_truth"]["classical_isp"]
    _write(tmp_path, path.name, json.dumps(document))
    drawn = _pareto_figures(monkeypatch)
    made = report.build([tmp_path], crops=False)
    assert list(made.references.values()) == [[]]
    for row in made.rows:
        assert row["psnr_vs_gt"] is not None and row["classical_isp"] is None
        assert row["psnr_vs_classical_isp"] is None and row["not_working_isp"] is None
    markdown = report.to_markdown(made)
    assert "| ref |" not in markdown and 'class="reference"' not in report.to_html(made)
    assert all(md_cell(markdown, row["id"], report.VERSUS_CLASSICAL) == "–" for row in made.rows)
    assert any("no classical ISP reference: the sidecars predate it" in note for note in made.notes())
    (axis,) = drawn[0].axes
    assert not [line for line in axis.get_lines() if line.get_label().startswith("classical ISP")]
    (overall,) = [choice for choice in made.ship if choice["delegate"] is None]
    eligible = [row for row in made.rows if row["psnr_vs_float"] >= report.DEFAULT_MIN_PSNR]
    assert overall["row"] == min(eligible, key=lambda row: row["mean_ms"])["id"]
    assert overall["not_working_isp"] is None


def _measured_on_device(document: dict, device_psnr: dict[str, float | None]) -> None:
    """Give each row of the precisions in ``device_psnr`` an on-device accuracy record (None: "unsupported",
    a tool too old to dump outputs), as android_bench.run writes them from a phone."""
    for row in document["rows"]:
        precision = row["sidecar"]["export_format"]["name"]
        if precision not in device_psnr:
            continue
        psnr = device_psnr[precision]
        row["device_accuracy"] = (
            {"status": "unsupported", "error": "this benchmark_model does not know --output_filepath"}
            if psnr is None
            else {
                "status": "ok",
                "images": 2,
                "psnr_vs_float": psnr,
                "ssim_vs_float": 0.99,
                "psnr_vs_gt": 20.0,
            }
        )


def test_on_device_accuracy_is_shown_flagged_and_decides_the_ship_choice(bench, tmp_path):
    """fp16 holds 58 dB vs float on the host, but its delegate computes 30 dB on the phone: the drop is
    flagged, and the 40 dB bar now refuses it on its own figure, so the float32 file ships; a row the tool
    could not measure keeps the host's figure and says why."""
    document, path = _sidecar_rows(bench)
    _measured_on_device(document, {"fp16": 30.0, "int8": None})
    _write(tmp_path, path.name, json.dumps(document))
    made = report.build([tmp_path], crops=False)
    rows = {
        row["precision"]: [r for r in made.rows if r["precision"] == row["precision"]] for row in made.rows
    }
    for row in rows["fp16"]:
        assert row["device_psnr_vs_float"] == 30.0 and row["ship_psnr_from"] == "device"
        assert row["device_drop"] is True and row["device_drop_db"] == pytest.approx(
            row["psnr_vs_float"] - 30.0
        )
    for row in rows["int8"]:
        assert row["device_psnr_vs_float"] is None and row["ship_psnr_from"] == "host"
        assert row["device_accuracy_note"].startswith("unsupported: this benchmark_model does not know")
    (overall,) = [choice for choice in made.ship if choice["delegate"] is None]
    assert overall["row"] == min(rows["float32"], key=lambda row: row["mean_ms"])["id"]
    markdown = report.to_markdown(made)
    headers = [name for name, _ in report.columns(made.rows)]
    assert "PSNR vs float on device" in headers and report.DEVICE_LEGEND in markdown
    fp16 = rows["fp16"][0]
    cell = dict(zip(headers, md_row(markdown, fp16["id"])))["PSNR vs float on device"]
    assert cell == f"30.00 ⚠ {fp16['psnr_vs_float'] - 30.0:.1f} dB below the host"


def test_a_delegate_that_ran_otherwise_than_predicted_is_noted(bench, tmp_path):
    """The sidecar's op tables said the GPU takes the whole float32 graph; the tool says it ran part of it:
    the report notes the disagreement with both sides' unsupported ops (the tables are kept by hand). Here
    the row has no runtime info, so the tool's delegate log lines are what is compared; the runtime info's
    per-op comparison is tested in tests/test_android_bench_run.py through the fake phone."""
    document, path = _sidecar_rows(bench)
    row = next(row for row in document["rows"] if row["sidecar"]["export_format"]["name"] == "float32")
    assert row["sidecar"]["delegates"]["gpu"]["supported"] == "full"  # PyNET's float ops are all GPU ops
    row["delegate"] = "gpu"
    row["coverage"] = {
        "status": "partial",
        "delegated_nodes": 40,
        "total_nodes": 44,
        "unsupported_ops": ["RSQRT"],
    }
    _write(tmp_path, path.name, json.dumps(document))
    made = report.build([tmp_path], crops=False)
    (gpu,) = [r for r in made.rows if r["delegate"] == "gpu"]
    assert gpu["predicted_coverage"] == "full" and gpu["placement_mismatch"] is True
    assert gpu["placement_from"] == "log lines"  # no runtime info in the row: a tool too old for it
    assert gpu["placement_note"] == (
        "the export's op tables predicted full (no ops unsupported), the tool ran partial (RSQRT unsupported)"
    )
    assert any(
        note.startswith(f"#{gpu['id']} {gpu['file']} on gpu: the export's op tables") for note in made.notes()
    )
    assert all(
        r["placement_mismatch"] is None for r in made.rows if r["delegate"] != "gpu"
    )  # cpu/xnnpack: none
