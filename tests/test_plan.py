"""`cnnstat plan`: memory and time per batch, the exact largest batch within a budget, the
best batch; memory budgets in the device profiles.

Memory is checked against `cnnstat MODEL --batch B --format json` (the same figures
`check --max-memory` gates on) and, for the data part, against what real Caffe logged as
"Memory required for data" at batch 2…16 (CK's GTX 1080 summaries in ../shared).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import CAFFE_CORPUS, MODELS, REPO, TIMINGS, need, read_tsv

from analyzer.commands import cli
from analyzer.commands.check import parse_bytes
from analyzer.commands.plan import max_batch, parse_batches
from analyzer.errors import CnnstatError
from analyzer.timing.calibrate import ram_bytes
from analyzer.timing.profile import load_profile

ALEXNET = str(MODELS / "alexnet.prototxt")
GIB = 2**30


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def plan_json(capsys, *argv: str) -> dict:
    status, out, err = run(capsys, "plan", *argv, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def analysis_json(capsys, model: str, batch: int, *argv: str) -> dict:
    status, out, err = run(capsys, model, "--batch", str(batch), "--format", "json", *argv)
    assert status == 0, err
    return json.loads(out)


def memory_of(d: dict, convention: str) -> int:
    """What `check --max-memory` counts, from the analysis JSON."""
    m = d["totals"]["memory"]
    if convention == "peak":
        return m["params_bytes"] + m["data_peak_bytes"] + m["workspace_shared_bytes"]
    return m["params_bytes"] + m["data_bytes"] + m["workspace_bytes"]


@pytest.mark.parametrize("convention", ["caffe", "peak"])
def test_every_row_equals_the_analysis_at_that_batch(capsys, convention):
    plan = plan_json(capsys, ALEXNET, "--device", "jetson-tx1", "--batches", "1,3,8,40",
                     "--convention", convention)
    assert [r["batch"] for r in plan["rows"]] == [1, 3, 8, 40]
    for row in plan["rows"]:
        d = analysis_json(capsys, ALEXNET, row["batch"], "--device", "jetson-tx1")
        assert row["memory_bytes"] == memory_of(d, convention)
        assert row["time_ms"] == d["totals"]["time_ms"]
        assert row["ms_per_image"] == pytest.approx(row["time_ms"] / row["batch"], rel=1e-12)
        assert row["images_per_s"] == pytest.approx(1000 * row["batch"] / row["time_ms"],
                                                    rel=1e-12)
        assert row["fits"] is (row["memory_bytes"] <= 4 * GIB)
    assert plan["memory_budget_bytes"] == 4 * GIB and plan["convention"] == convention
    assert plan["device"] == "jetson-tx1" and plan["budget_origin"] == "device jetson-tx1"


def test_check_max_memory_agrees_with_plan_at_the_max_batch(capsys):
    """The largest batch plan reports passes `check --max-memory`; one more fails it."""
    plan = plan_json(capsys, ALEXNET, "--memory", "1GiB")
    top = plan["max_batch"]
    assert run(capsys, "check", ALEXNET, "--no-config", "--batch", str(top),
               "--max-memory", "1GiB")[0] == 0
    status, out, _ = run(capsys, "check", ALEXNET, "--no-config", "--batch", str(top + 1),
                         "--max-memory", "1GiB")
    assert status == 1 and "over budget: memory" in out


def test_max_batch_is_exact_at_the_budget_edge(capsys):
    """A budget of exactly memory(B) allows B; one byte less allows only B − 1."""
    for batch in (5, 37):
        need_b = memory_of(analysis_json(capsys, ALEXNET, batch), "caffe")
        assert plan_json(capsys, ALEXNET, "--memory", str(need_b))["max_batch"] == batch
        assert plan_json(capsys, ALEXNET, "--memory", str(need_b - 1))["max_batch"] == batch - 1


def test_memory_line_and_default_rows(capsys):
    """AlexNet: params and workspace are fixed, every blob grows with the batch."""
    plan = plan_json(capsys, ALEXNET, "--memory", "2GiB")
    one = analysis_json(capsys, ALEXNET, 1)["totals"]["memory"]
    assert plan["memory_fixed_bytes"] == one["params_bytes"] + one["workspace_bytes"]
    assert plan["memory_per_image_bytes"] == one["data_bytes"]
    top = plan["max_batch"]
    assert top == (2 * GIB - plan["memory_fixed_bytes"]) // plan["memory_per_image_bytes"]
    batches = [r["batch"] for r in plan["rows"]]
    powers = [b for b in batches if b != top]
    assert powers == [2**i for i in range(len(powers))]
    assert powers[-2] <= top < powers[-1]  # up to the first power of two that does not fit
    assert [r["fits"] for r in plan["rows"]] == [b <= top for b in batches]
    assert plan["max_batch_memory_bytes"] == next(
        r["memory_bytes"] for r in plan["rows"] if r["batch"] == top)


def test_without_a_budget_rows_run_to_1024_and_nothing_fits_or_not(capsys):
    plan = plan_json(capsys, ALEXNET)
    assert [r["batch"] for r in plan["rows"]] == [2**i for i in range(11)]
    assert {r["fits"] for r in plan["rows"]} == {None}
    assert plan["max_batch"] is None and plan["best_batch"] is None  # no time, no best
    assert plan["memory_budget_bytes"] is None and plan["device"] is None


def test_best_batch_has_the_most_images_per_second_among_rows_that_fit(capsys):
    plan = plan_json(capsys, ALEXNET, "--device", "gtx1080", "--memory", "1GiB",
                     "--batches", "1,2,4,8,16,32,64,128")
    fitting = [r for r in plan["rows"] if r["fits"]]
    assert len(fitting) < len(plan["rows"])  # some rows do not fit
    best = max(fitting, key=lambda r: r["images_per_s"])
    assert plan["best_batch"] == best["batch"]
    assert all(r["images_per_s"] <= best["images_per_s"] for r in fitting)


def test_data_memory_per_row_is_what_caffe_logged():
    """plan's memory − params − workspace = Caffe's "Memory required for data" (CK, real
    BVLC Caffe on the GTX 1080, AlexNet and GoogLeNet at batch 2…16)."""
    from analyzer.commands.plan import build_parser, build_plan

    rows = read_tsv(TIMINGS / "ck_caffe_gtx1080_summary.tsv")
    for exp, net in (("bvlc-alexnet-cudnn", "bvlc_alexnet_deploy"),
                     ("bvlc-googlenet-cudnn", "bvlc_googlenet_deploy")):
        caffe = {int(r["batch"]): int(r["memory_bytes"]) for r in rows
                 if r["experiment"] == exp}
        model = str(need(CAFFE_CORPUS / f"{net}.prototxt"))
        args = build_parser().parse_args([model])
        plan = build_plan(model, args, "caffe", sorted(caffe))
        for row in plan.rows:
            assert (row.memory_bytes - plan.fixed_bytes == caffe[row.batch]), (net, row.batch)


# ---------------------------------------------------------------------------------------
# The search itself, on memory curves that are not straight lines


@pytest.mark.parametrize("guess", [1, 3, 7, 8, 9, 50, 1000])
def test_max_batch_search_finds_the_edge_whatever_the_guess(guess):
    def memory(b: int) -> int:  # affine up to 7, then a step: the line's guess is wrong
        return 100 + 10 * b + (40 if b > 7 else 0)

    for budget in range(110, 400, 7):
        want = max(b for b in range(1, 400) if memory(b) <= budget)
        assert max_batch(memory, budget, guess) == want, (budget, guess)


def test_parse_batches():
    assert parse_batches("8, 1,2,2") == [1, 2, 8]
    for bad in ("", "0,1", "a", "-1"):
        with pytest.raises(CnnstatError):
            parse_batches(bad)


# ---------------------------------------------------------------------------------------
# Bad input: one line, exit 2


@pytest.mark.parametrize("argv,said", [
    (["--memory", "100MiB"], "batch 1 does not fit"),
    (["--memory", "2G"], "ambiguous"),
    (["--memory", "8GiBs"], "unknown unit"),
    (["--memory", "0"], "must be positive"),
    (["--batch", "4"], "--batches"),
    (["--batches", "1,x"], "--batches wants"),
    (["--device", "no-such-device"], "no device profile named"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, said):
    status, out, err = run(capsys, "plan", ALEXNET, *argv)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and said in err, err


def test_a_profile_without_memory_plans_without_a_budget(tmp_path, capsys):
    data = json.loads(Path(load_profile("gtx1080").path).read_text())
    del data["memory_bytes"], data["memory_note"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    plan = plan_json(capsys, ALEXNET, "--device", str(path), "--batches", "1,2")
    assert plan["memory_budget_bytes"] is None and plan["max_batch"] is None
    assert plan["warnings"] == ["device profile 'gtx1080' states no memory: give --memory "
                                "SIZE for a budget"]
    assert plan["best_batch"] == 2


def test_table_and_markdown_show_the_answer(capsys):
    status, out, _ = run(capsys, "plan", ALEXNET, "--device", "jetson-tx1")
    plan = plan_json(capsys, ALEXNET, "--device", "jetson-tx1")
    assert status == 0
    assert f"max batch {plan['max_batch']:,}:" in out and "best images/s" in out
    status, md, _ = run(capsys, "plan", ALEXNET, "--device", "jetson-tx1", "--format",
                        "markdown")
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| batch | time ms | ms/image | images/s | memory | fits |  |"
    assert len(rows) == 1 + len(plan["rows"])


# ---------------------------------------------------------------------------------------
# Memory in the device profiles


def test_shipped_profiles_state_their_memory_as_the_rebuild_script_does():
    """tools/build_profiles.sh passes --memory to `cnnstat fit`; the shipped profiles hold it."""
    script = (REPO / "tools" / "build_profiles.sh").read_text()
    calls = script.split("python -m analyzer fit")[1:]
    assert len(calls) == 2
    for call in calls:
        words = shlex.split(call.replace("\\\n", " "))
        memory = words[words.index("--memory") + 1]
        profile = json.loads((REPO / words[words.index("-o") + 1]).read_text())
        assert profile["memory_bytes"] == parse_bytes(memory)
        assert profile["memory_note"] == words[words.index("--memory-note") + 1]
        assert f"--memory {memory}" in profile["command"]
    assert load_profile("gtx1080").data["memory_bytes"] == 8 * GIB
    tx1 = load_profile("jetson-tx1").data
    assert tx1["memory_bytes"] == 4 * GIB and "shared" in tx1["memory_note"]


def test_fit_stores_memory_in_the_profile(tmp_path, capsys):
    out = tmp_path / "p.json"
    log = REPO / "tests" / "data" / "caffe_time_alexnet_b2.log"
    assert cli.main(["fit", "--caffe-log", str(log), "--model", ALEXNET, "--batch", "2",
                     "--memory", "6GiB", "--memory-note", "a test card", "-o", str(out)]) == 0
    profile = json.loads(out.read_text())
    assert (profile["memory_bytes"], profile["memory_note"]) == (6 * GIB, "a test card")
    status, text, _ = run(capsys, "devices", str(out))
    assert "memory:   6 GiB (the budget of 'cnnstat plan'): a test card" in text


def test_calibrate_records_the_machines_ram():
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo to compare with")
    total_kib = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.M).group(1))
    assert ram_bytes() == total_kib * 1024
