"""Export torchvision classifiers to graph-only ONNX files, with torchvision's published figures.

Needs torch, torchvision, onnx, onnxruntime (and, for ``--dynamo``, onnxscript) in a venv of
its own, never the project's::

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        onnx onnxscript onnxruntime
    /tmp/tv/bin/python tools/export_torchvision.py              # every default model below
    /tmp/tv/bin/python tools/export_torchvision.py swin_t --dynamo swin_t --verify
    /tmp/tv/bin/python tools/export_torchvision.py --dynamo vit_b_16   # that one graph only

Nothing is downloaded: every model is built with ``weights=None``. Each float parameter and
buffer gets N(0, 0.01) noise added to its initial value, so no two tensors are equal and the
TorchScript exporter, which merges initializers of equal value, keeps them all (a zero bias or
a LayerNorm weight of ones would otherwise be shared between layers). The convention is that of
``../shared/corpus/onnx_modern``: opset 17, TorchScript exporter (``dynamo=False``),
``do_constant_folding=False``, input ``input`` and output ``output`` with a symbolic batch
``N``, at the input size torchvision's published figures use (its transforms' crop size).
``--dynamo NAME`` also exports NAME with the dynamo exporter at its default opset and default
graph optimisation, as ``NAME_dynamo.onnx``, without the per-node Python stack traces that
exporter records in ``metadata_props`` (local paths; the other metadata is kept).

The weights are saved as external data (``<stem>.weights``; tensors under 1 KiB stay inline,
onnx's default) and then deleted, so only the graph remains. MANIFEST.tsv beside the graphs
holds, per file, torchvision's PUBLISHED num_params and GFLOPS (weights enum meta
``num_params`` and ``_ops``, GFLOPS = multiply-accumulates x 1e9) and, as a cross-check, the
learnable parameter count of the exported instance; rows are merged by file name, so runs on
subsets accumulate. ``<stem>.shapes.tsv`` beside each graph holds the shape of every float32
node output as onnxruntime computed it at batch 1, before the weights were deleted.
``--copy-to DIR`` copies each graph, its shapes and the manifest there as soon as that graph
is written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "torchvision"
DEFAULT_MODELS = ("vit_b_16", "swin_t", "convnext_tiny", "vit_b_32", "swin_v2_t", "maxvit_t",
                  "regnet_y_400mf", "mobilenet_v3_small", "efficientnet_b0")
DEFAULT_DYNAMO = ("vit_b_16", "swin_t")
OPSET = 17
COLUMNS = ("file", "model", "input", "num_params", "gflops_published", "learnable_exported",
           "exporter", "opset")


@dataclass(frozen=True)
class Exported:
    """One written graph: its manifest row and how long the export took (seconds)."""

    row: dict[str, str]
    seconds: float
    graph_bytes: int


def _header(torch_version: str, tv_version: str) -> str:
    return (
        f"# Graphs exported by tools/export_torchvision.py from torchvision {tv_version} model "
        f"definitions (torch {torch_version}) with random\n"
        "# weights (weights=None; every float parameter and buffer perturbed so none are "
        "equal), batch dim symbolic ('N'), input 'input'.\n"
        "# exporter torchscript: opset 17, dynamo=False, do_constant_folding=False "
        "(BatchNormalization kept), as ../shared/corpus/onnx_modern.\n"
        "# exporter dynamo: dynamo=True at its default opset and default optimisation (how "
        "users export now); its per-node stack_trace metadata dropped.\n"
        "# Weights were saved as external data in <stem>.weights and deliberately deleted: a "
        "static analyzer needs only dims.\n"
        "# num_params, gflops_published = torchvision's PUBLISHED figures "
        "(get_model_weights(model).DEFAULT.meta['num_params'], ['_ops']; GFLOPS are\n"
        "# multiply-accumulates x 1e9 at the given input). learnable_exported = sum of "
        "p.numel() over the exported instance's parameters (a cross-check).\n"
        "# swin_t_dynamo.onnx: the dynamo exporter's default optimiser folds each block's "
        "relative_position_bias_table (169 x heads; 23,322 learnable\n"
        "# values in all) through its constant index into a 2401 x heads constant (331,338 "
        "values): the tables are not in the graph, so its\n"
        "# learnable count cannot be read off the graph exactly.\n"
    )


def _perturb(model, seed: int) -> None:
    """Add N(0, 0.01) noise to every float parameter and buffer (distinct values, same scale)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tensors = [*model.parameters(), *model.buffers()]
        for t in tensors:
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.01)


def _drop_stack_traces(model) -> None:
    """Remove the dynamo exporter's per-node Python stack traces (this machine's file paths,
    over a third of the graph's bytes); every other metadata entry is kept."""
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        if len(kept) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(kept)


def _externalise(path: Path) -> Path:
    """Re-save ``path`` (stack traces dropped) with its weights in ``<stem>.weights`` beside
    it; return that file."""
    import onnx

    model = onnx.load(str(path))  # also pulls in any external data the exporter wrote
    _drop_stack_traces(model)
    for stale in path.parent.glob(path.name + ".data"):
        stale.unlink()
    weights = path.with_suffix(".weights")
    onnx.save_model(model, str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=weights.name)
    return weights


def _verify(path: Path, model, x) -> float:
    """Largest |onnxruntime − torch| on ``x`` and on a batch of 2 (weights still on disk)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (x, torch.cat([x, x.flip(0) * 0.5])):
        with torch.no_grad():
            want = model(batch).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: batch.numpy()})[0]
        assert got.shape == want.shape, (path.name, got.shape, want.shape)
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _runtime_shapes(path: Path, x) -> dict[str, tuple[int, ...]]:
    """Shape of every float32 node output as onnxruntime computes it on ``x`` (weights still
    on disk): the activations, not the integer shape arithmetic or boolean masks."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    named = {v.name for v in model.graph.output}
    outs = [o for node in model.graph.node for o in node.output if o and o not in named]
    model.graph.output.extend(onnx.ValueInfoProto(name=o) for o in outs)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # errors only: not a warning per Unsqueeze it cannot fuse
    sess = ort.InferenceSession(model.SerializeToString(), quiet,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return {n: tuple(int(d) for d in v.shape) for n, v in zip(names, values)
            if isinstance(v, np.ndarray) and v.dtype == np.float32}


def write_shapes(path: Path, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """``<stem>.shapes.tsv``: tensor name and its dims (``1x197x768``): the graph output
    first, then node outputs in graph order."""
    rows = [f"{name}\t{'x'.join(map(str, dims))}" for name, dims in shapes.items()]
    path.write_text(f"# float32 node outputs of {source} at batch 1, shapes as onnxruntime "
                    "computed them before the weights were deleted\ntensor\tshape\n"
                    + "\n".join(rows) + "\n")


def export_one(name: str, out: Path, dynamo: bool, verify: bool, seed: int) -> Exported:
    """Build ``name`` with random weights, export it, drop its weights, return its row."""
    import onnx
    import torch
    from torchvision.models import get_model, get_model_weights

    published = get_model_weights(name).DEFAULT
    side = published.transforms().crop_size[0]
    torch.manual_seed(seed)  # the initial weights too: small ones stay inline in the graph
    model = get_model(name, weights=None).eval()
    _perturb(model, seed)
    learnable = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))
    stem = f"{name}_dynamo" if dynamo else name
    path = out / f"{stem}.onnx"
    start = time.perf_counter()
    if dynamo:
        batch = torch.export.Dim("N", min=1, max=1024)
        program = torch.onnx.export(model, (torch.cat([x, x]),), dynamo=True,
                                    input_names=["input"], output_names=["output"],
                                    dynamic_shapes=({0: batch},))
        program.save(str(path), external_data=True)
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET,
                          do_constant_folding=False, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    weights = _externalise(path)
    seconds = time.perf_counter() - start
    if verify:
        print(f"  {path.name}: max |ort - torch| = {_verify(path, model, x):.2e}", flush=True)
    write_shapes(out / f"{stem}.shapes.tsv", _runtime_shapes(path, x), path.name)
    weights.unlink()
    graph = onnx.load(str(path), load_external_data=False)
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    row = {
        "file": path.name, "model": name, "input": f"1x3x{side}x{side}",
        "num_params": str(published.meta["num_params"]),
        "gflops_published": str(published.meta["_ops"]),
        "learnable_exported": str(learnable),
        "exporter": "dynamo" if dynamo else "torchscript", "opset": str(opset),
    }
    return Exported(row, seconds, path.stat().st_size)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of an existing MANIFEST.tsv (comment lines skipped); [] when there is none."""
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def write_manifest(path: Path, rows: list[dict[str, str]], header: str) -> None:
    """Write rows in DEFAULT_MODELS order (TorchScript before dynamo), others after."""
    order = {m: i for i, m in enumerate(DEFAULT_MODELS)}
    rows = sorted(rows, key=lambda r: (r["exporter"] != "torchscript",
                                       order.get(r["model"], len(order)), r["file"]))
    body = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in rows]
    path.write_text(header + "\n".join(body) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("models", nargs="*",
                        help="torchvision model names for the TorchScript exporter (default: "
                             f"{', '.join(DEFAULT_MODELS)}, unless only --dynamo is given)")
    parser.add_argument("--dynamo", action="append", default=None, metavar="NAME",
                        help="export NAME with dynamo=True too (repeatable; default: "
                             f"{', '.join(DEFAULT_DYNAMO)} when no model is named)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--copy-to", type=Path, default=None, metavar="DIR")
    parser.add_argument("--verify", action="store_true",
                        help="compare onnxruntime with torch before the weights are deleted")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch
    import torchvision

    models = args.models or ([] if args.dynamo else list(DEFAULT_MODELS))
    dynamo = args.dynamo or ([] if args.models else list(DEFAULT_DYNAMO))
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "MANIFEST.tsv"
    header = _header(torch.__version__.split("+")[0], torchvision.__version__.split("+")[0])
    rows = {r["file"]: r for r in read_manifest(manifest)}
    jobs = [(m, False) for m in models] + [(m, True) for m in dynamo]
    failed = []
    for name, use_dynamo in jobs:
        print(f"{name} ({'dynamo' if use_dynamo else 'torchscript'}) ...", flush=True)
        try:
            done = export_one(name, args.out, use_dynamo, args.verify, args.seed)
        except Exception as exc:  # one model failing must not lose the others
            print(f"  FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                  flush=True)
            failed.append(name)
            continue
        row = done.row
        rows[row["file"]] = row
        write_manifest(manifest, list(rows.values()), header)
        mismatch = "" if row["num_params"] == row["learnable_exported"] else (
            f"  MISMATCH: published {row['num_params']}, exported {row['learnable_exported']}")
        print(f"  {row['file']}: {done.graph_bytes:,} bytes, export {done.seconds:.1f} s, "
              f"opset {row['opset']}{mismatch}", flush=True)
        if args.copy_to is not None:
            args.copy_to.mkdir(parents=True, exist_ok=True)
            for made in (row["file"], row["file"].replace(".onnx", ".shapes.tsv")):
                shutil.copy2(args.out / made, args.copy_to / made)
            shutil.copy2(manifest, args.copy_to / manifest.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
