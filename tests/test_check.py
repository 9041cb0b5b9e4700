"""`cnnstat check`: budgets from flags and config files, exit codes and one-line reasons.

The net under test is small enough to cost by hand (figures in the comments); every budget is
tried at its exact figure (within: ≤) and one unit below (over).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.commands.check import parse_bytes, parse_count, parse_ms
from analyzer.commands.cli import main
from analyzer.errors import CnnstatError

# data 1×3×8×8; conv 4 outputs 3×3 pad 1 → 1×4×8×8; fc 10 outputs on its 256 values.
#   params: conv 4·27 + 4 = 112, fc 10·256 + 10 = 2,570 → 2,682 (× 4 B = 10,728 B)
#   MACs:   conv 4·27·64 = 6,912, fc 2,560 → 9,472;  FLOPs 2·9,472 = 18,944 (no other op)
#   data (Caffe: every top): input 192·4 = 768, conv 256·4 = 1,024, fc 10·4 = 40 → 1,832 B
#   data (liveness peak): input and conv output alive together → 1,792 B
#   workspace: conv im2col 27·64·4 = 6,912 B (the only one, so shared is the same)
#   memory (Caffe): 10,728 + 1,832 + 6,912 = 19,472 B;  (peak): 10,728 + 1,792 + 6,912 = 19,432
NET = """name: "Small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 10 } }
"""
# Toy device: 1e-6 ms per MAC for conv and fc, nothing else: conv 0.006912 ms, fc 0.00256 ms.
TOY = {"name": "toy", "kinds": {"Convolution": {"coef": {"sum": {"macs": 1e-6}}},
                                "InnerProduct": {"coef": {"sum": {"macs": 1e-6}}}},
       "fallback": {"coef": {"sum": {"const": 0.0}}}}


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    (project / "nets").mkdir(parents=True)
    path = project / "nets" / "small.prototxt"
    path.write_text(NET)
    monkeypatch.chdir(tmp_path)  # no config above tmp_path's parents is expected to apply
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_units():
    assert parse_count("5M") == 5_000_000
    assert parse_count("2.5G") == 2_500_000_000
    assert parse_count("1_200") == 1200 and parse_count(1200) == 1200
    assert parse_count("3k") == 3000
    assert parse_bytes("200MiB") == 200 * 2**20
    assert parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes("4 KiB") == 4096 and parse_bytes("512") == 512 and parse_bytes("7B") == 7
    assert parse_ms("40") == 40.0 and parse_ms("0.04s") == 40.0 and parse_ms("500us") == 0.5
    with pytest.raises(CnnstatError, match="ambiguous for bytes"):
        parse_bytes("2G")
    with pytest.raises(CnnstatError, match="unknown unit 'x'"):
        parse_count("5x")
    with pytest.raises(CnnstatError, match="expected a number"):
        parse_ms("fast")


# (flag, exact figure that passes, one unit less that fails, the reason's start)
BUDGETS = [
    ("--max-params", "2682", "2681", "params 2,682 (2.68K) > 2,681 (2.68K)"),
    ("--max-macs", "9472", "9.471K", "MACs 9,472 (9.47K) > 9,471 (9.47K)"),
    ("--max-flops", "18944", "18943", "FLOPs 18,944 (18.9K) > 18,943 (18.9K)"),
    ("--max-memory", "19472B", "19471", "memory 19,472 B (19 KiB) > 19,471 B (19 KiB)"),
    ("--max-data", "1832", "1831B", "data memory 1,832 B (1.79 KiB) > 1,831 B (1.79 KiB)"),
    ("--max-workspace", "6912", "6.911KB", "workspace 6,912 B (6.75 KiB) > 6,911 B (6.75 KiB)"),
]


@pytest.mark.parametrize(("flag", "ok", "over", "reason"), BUDGETS)
def test_each_budget_kind(model, capsys, flag, ok, over, reason):
    code, out, _ = run(capsys, str(model), flag, ok)
    assert code == 0 and out.startswith(f"{model}: within budget")
    code, out, err = run(capsys, str(model), flag, over)
    assert code == 1 and err == ""
    assert out == f"{model}: over budget: {reason} ({flag})\n"


def test_peak_convention(model, capsys):
    assert run(capsys, str(model), "--convention", "peak", "--max-memory", "19432")[0] == 0
    assert run(capsys, str(model), "--convention", "peak", "--max-data", "1792")[0] == 0
    code, out, _ = run(capsys, str(model), "--convention", "peak", "--max-memory", "19431")
    assert code == 1 and "memory 19,432 B" in out


def test_one_line_per_exceeded_budget(model, capsys):
    code, out, _ = run(capsys, str(model), "--max-params", "1K", "--max-macs", "1M",
                       "--max-workspace", "1KiB", "--max-data", "1KB")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 3
    assert [ln.split(": ")[2].split(" ")[0] for ln in lines] == ["params", "data", "workspace"]


def test_time_budgets_need_and_use_a_device(model, tmp_path, capsys):
    toy = tmp_path / "toy.json"
    toy.write_text(json.dumps(TOY))
    code, _, err = run(capsys, str(model), "--max-time-ms", "1")
    assert code == 2
    assert err == (f"cnnstat: {model}: max-time-ms needs a device profile: give --device or "
                   "'device' in the config\n")
    # total 0.006912 + 0.00256 = 0.009472 ms
    assert run(capsys, str(model), "--device", str(toy), "--max-time-ms", "0.0095")[0] == 0
    code, out, _ = run(capsys, str(model), "--device", str(toy), "--max-time-ms", "9us")
    assert code == 1
    assert out == f"{model}: over budget: time 0.009 ms > 0.009 ms (--max-time-ms)\n"
    code, out, _ = run(capsys, str(model), "--device", str(toy), "--max-layer-time-ms", "0.005")
    assert code == 1
    assert out == (f"{model}: over budget: 1 layer(s) over 0.005 ms (--max-layer-time-ms): "
                   "'conv' 0.007 ms\n")
    assert run(capsys, str(model), "--device", str(toy), "--max-layer-time-ms", "0.007")[0] == 0


def test_budgets_from_pyproject(model, capsys):
    pyproject = model.parents[1] / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[tool.cnnstat]\nmax-params = "2K"\n'
                         'max_macs = 9472\n')
    code, out, _ = run(capsys, str(model))
    assert code == 1
    assert out == (f"{model}: over budget: params 2,682 (2.68K) > 2,000 (2K) "
                   f"({pyproject.resolve()} [tool.cnnstat] max-params)\n")
    # a flag overrides the config's value for its key only
    code, out, _ = run(capsys, str(model), "--max-params", "3K")
    assert code == 0 and "MACs ≤ 9,472" in out
    code, _, _ = run(capsys, str(model), "--max-params", "3K", "--max-macs", "9K")
    assert code == 1
    assert run(capsys, str(model), "--no-config", "--max-params", "3K")[0] == 0


def test_budgets_from_cnnstat_toml_win_over_pyproject_and_are_found_upward(model, tmp_path,
                                                                           capsys):
    project = model.parents[1]
    (project / "pyproject.toml").write_text('[tool.cnnstat]\nmax-params = "1"\n')
    (project / ".cnnstat.toml").write_text('max-workspace = "6KiB"\n')
    code, out, _ = run(capsys, str(model))
    assert code == 1
    assert out == (f"{model}: over budget: workspace 6,912 B (6.75 KiB) > 6,144 B (6 KiB) "
                   f"({(project / '.cnnstat.toml').resolve()} max-workspace)\n")
    # a pyproject.toml without [tool.cnnstat] nearer the model is passed over
    (model.parent / "pyproject.toml").write_text('[project]\nname = "nets"\n')
    assert run(capsys, str(model))[0] == 1
    # config may name the device (a path relative to the config file) for time budgets
    (project / "toy.json").write_text(json.dumps(TOY))
    (project / ".cnnstat.toml").write_text('device = "toy.json"\nmax-time-ms = 0.009\n')
    code, out, _ = run(capsys, str(model))
    assert code == 1 and "time 0.009 ms > 0.009 ms" in out


def test_bad_config_and_bad_input_exit_2(model, capsys):
    (model.parent / ".cnnstat.toml").write_text('max-parms = "5M"\n')
    code, _, err = run(capsys, str(model))
    assert code == 2 and "unknown key 'max-parms'" in err and err.count("\n") == 1
    (model.parent / ".cnnstat.toml").write_text('max-params = [1]\n')
    code, _, err = run(capsys, str(model))
    assert code == 2 and "expected a number or a string like '5M'" in err
    (model.parent / ".cnnstat.toml").write_text("max-params = \n")
    assert run(capsys, str(model))[0] == 2
    (model.parent / ".cnnstat.toml").unlink()
    code, _, err = run(capsys, str(model))
    assert code == 2 and "no budget to check" in err
    code, _, err = run(capsys, "missing.prototxt", "--max-params", "1M")
    assert (code, err) == (2, "cnnstat: missing.prototxt: no such file\n")
    # several models: every one is checked; bad input (2) outranks over budget (1)
    code, out, err = run(capsys, str(model), "missing.prototxt", "--max-params", "1K")
    assert code == 2 and "over budget" in out and "no such file" in err
    code, _, err = run(capsys, str(model), "--max-memory", "2G")
    assert code == 2 and "ambiguous" in err


def test_check_a_file_at_a_git_revision(model, capsys, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    project = model.parents[1]
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "small"]):
        subprocess.run(["git", *args], cwd=project, env=env, check=True, capture_output=True)
    model.write_text(NET.replace("num_output: 10", "num_output: 20"))
    monkeypatch.chdir(project)
    assert run(capsys, "HEAD:nets/small.prototxt", "--max-params", "2682")[0] == 0
    code, out, _ = run(capsys, "nets/small.prototxt", "--max-params", "2682")
    assert code == 1 and "params 5,252" in out  # fc: 20·256 + 20 = 5,140; + conv 112


def test_pre_commit_hook_runs_check_on_models_only(model, capsys):
    import re

    yaml = pytest.importorskip("yaml")
    from conftest import REPO

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])
    picked = [p for p in ("nets/a.prototxt", "m/resnet.onnx", "nets/solver.prototxt",
                          "nets/lenet_solver.prototxt", "README.md", "x.onnx.txt")
              if files.search(p) and not exclude.search(p)]
    assert picked == ["nets/a.prototxt", "m/resnet.onnx"]
    entry = hook["entry"].split()
    assert entry[:2] == ["cnnstat", "check"]
    # pre-commit appends the file names; quiet when within budget
    assert main([*entry[1:], "--max-params", "2682", str(model)]) == 0
    assert capsys.readouterr().out == ""
    assert main([*entry[1:], "--max-params", "2681", str(model)]) == 1
