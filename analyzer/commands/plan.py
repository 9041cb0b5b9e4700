"""``cnnstat plan MODEL``: the largest batch that fits a memory budget, and throughput over batch.

Units, stated once: memory in bytes, time in milliseconds, throughput in images per second.

- **Memory** of a batch is params + data + workspace under a convention (``caffe``: every top
  and one im2col buffer per convolution; ``peak``: the liveness peak and one shared buffer),
  exactly what ``cnnstat check --max-memory`` counts (:meth:`analyzer.analysis.Totals.memory`).
- **Time** of a batch is the device's predicted forward time of the whole batch.
- **Budget**: ``--memory SIZE``, else the device profile's ``memory_bytes``.
- ``max_batch``: the largest batch whose memory fits, over all batches, not only the rows.
  Memory is affine in the batch (params and workspace are fixed, every blob grows with it):
  two analyses give the line, the line gives the batch, and analyses at that batch and the
  next one confirm it; when they do not (a net whose blobs do not all scale), a bisection
  between a batch that fits and one that does not finds it.
- ``best_batch``: among the rows that fit, the one with the most images per second.

Every row's memory and time come from the same call as ``cnnstat MODEL --batch B``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.analysis import MEMORY_CONVENTIONS, Report
from analyzer.commands.check import parse_bytes
from analyzer.commands.options import (
    Parser,
    add_model_options,
    analyze_path,
    write_output,
    write_rich,
)
from analyzer.errors import CnnstatError
from analyzer.render import nbytes

SCHEMA_VERSION = 1
NO_BUDGET_LAST = 1024  # default rows end here when there is no budget
CONVENTION_TEXT = {
    "caffe": "params + every top + one im2col buffer per conv (Caffe)",
    "peak": "params + liveness peak of the data + one shared im2col buffer",
}


@dataclass(frozen=True)
class PlanRow:
    """One batch: predicted time of the whole batch (ms, None without a device), memory
    (bytes) and whether it fits the budget (None without a budget)."""

    batch: int
    time_ms: float | None
    memory_bytes: int
    fits: bool | None

    @property
    def ms_per_image(self) -> float | None:
        return None if self.time_ms is None else self.time_ms / self.batch

    @property
    def images_per_s(self) -> float | None:
        if not self.time_ms:
            return None
        return 1000.0 * self.batch / self.time_ms


@dataclass(frozen=True)
class Plan:
    """A plan: the rows, the budget and the batches that answer the two questions."""

    model: dict[str, str]  # path, name, format
    inputs: dict[str, list[int]]  # at batch 1
    dtype: str
    device: str | None
    convention: str
    memory_budget_bytes: int | None
    budget_origin: str | None  # '--memory' or 'device jetson-tx1'
    budget_note: str | None  # the profile's memory_note
    rows: tuple[PlanRow, ...]
    max_batch: int | None
    max_batch_memory_bytes: int | None
    fixed_bytes: int  # memory at batch 0 on the line through batch 1 and 2
    per_image_bytes: int  # memory one more image adds
    best_batch: int | None
    warnings: tuple[str, ...] = field(default=())


class Batches:
    """One model analysed at any batch, each batch once, by the call ``cnnstat MODEL
    --batch B`` makes (so every figure equals that command's)."""

    def __init__(self, source: str, args: argparse.Namespace, convention: str) -> None:
        self.source, self.args, self.convention = source, args, convention
        self._reports: dict[int, Report] = {}

    def report(self, batch: int) -> Report:
        if batch not in self._reports:
            ns = argparse.Namespace(**vars(self.args))
            ns.batch = batch
            self._reports[batch] = analyze_path(self.source, ns)
        return self._reports[batch]

    def memory(self, batch: int) -> int:
        return self.report(batch).totals.memory(self.convention)

    def row(self, batch: int, budget: int | None) -> PlanRow:
        r = self.report(batch)
        mem = r.totals.memory(self.convention)
        return PlanRow(batch, r.totals.time_ms, mem, None if budget is None else mem <= budget)


def max_batch(memory: Callable[[int], int], budget: int, guess: int,
              limit: int = 2**40) -> int:
    """The largest batch ``b`` with ``memory(b) <= budget``, ``memory`` non-decreasing and
    ``memory(1) <= budget``: ``guess`` is checked with its successor, else bisection."""
    if memory(guess) <= budget:
        if memory(guess + 1) > budget:
            return guess
        lo, hi = guess + 1, 2 * guess + 2
        while memory(hi) <= budget:
            lo, hi = hi, 2 * hi
            if hi > limit:
                raise CnnstatError(f"memory stays within the budget beyond batch {limit:,}")
    else:
        lo, hi = 1, guess
    while hi - lo > 1:  # memory(lo) fits, memory(hi) does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory(mid) <= budget else (lo, mid)
    return lo


def parse_batches(text: str) -> list[int]:
    """'1,2,4,8' → [1, 2, 4, 8] (sorted, each once)."""
    try:
        batches = sorted({int(x) for x in text.replace(" ", "").split(",") if x})
    except ValueError:
        batches = []
    if not batches or batches[0] <= 0:
        raise CnnstatError(f"--batches wants positive integers like 1,2,4,8, got '{text}'")
    return batches


@dataclass(frozen=True)
class Budget:
    """A memory budget (bytes; None: none), where it came from, the profile's note on it,
    and a warning when a device was named but states no memory."""

    bytes: int | None = None
    origin: str | None = None  # '--memory' or 'device jetson-tx1'
    note: str | None = None
    warning: str | None = None


def budget_from(args: argparse.Namespace) -> Budget:
    """The budget from --memory, else from the device profile's ``memory_bytes``."""
    if getattr(args, "memory", None):
        value = parse_bytes(args.memory, "--memory")
        if value <= 0:
            raise CnnstatError(f"--memory must be positive, got '{args.memory}'")
        return Budget(value, "--memory")
    if getattr(args, "device", None):
        from analyzer.timing.profile import load_profile

        profile = load_profile(args.device)
        value = profile.data.get("memory_bytes")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return Budget(value, f"device {profile.name}", profile.data.get("memory_note"))
        return Budget(warning=f"device profile '{profile.name}' states no memory: give "
                              "--memory SIZE for a budget")
    return Budget()


def build_plan(source: str, args: argparse.Namespace, convention: str = "caffe",
               batches: Sequence[int] | None = None) -> Plan:
    """Analyse ``source`` at each batch (and wherever the max-batch search needs)."""
    if convention not in MEMORY_CONVENTIONS:
        raise CnnstatError(f"--convention must be caffe or peak, got '{convention}'")
    given = budget_from(args)
    budget, origin = given.bytes, given.origin
    nets = Batches(source, args, convention)
    m1, m2 = nets.memory(1), nets.memory(2)
    slope, fixed = m2 - m1, 2 * m1 - m2
    best_fit: int | None = None
    if budget is not None:
        if m1 > budget:
            raise CnnstatError(f"batch 1 does not fit: it needs {m1:,} B ({nbytes(m1)}) under "
                               f"the {convention} convention, the budget ({origin}) is "
                               f"{budget:,} B ({nbytes(budget)})", source)
        if slope <= 0:
            raise CnnstatError(f"no budget is ever reached: memory does not grow with the batch "
                               f"({m1:,} B at batch 1 and {m2:,} B at batch 2); does --batch "
                               "reach the net's inputs?", source)
        best_fit = max_batch(nets.memory, budget, max(1, (budget - fixed) // slope))
    if batches is None:
        last = NO_BUDGET_LAST if best_fit is None else best_fit + 1
        batches = [1]
        while batches[-1] < last:
            batches.append(batches[-1] * 2)
        if best_fit is not None and best_fit not in batches:  # the answer gets its row
            batches = sorted([*batches, best_fit])
    rows = tuple(nets.row(b, budget) for b in batches)
    fitting = [r for r in rows if r.fits is not False and r.images_per_s is not None]
    best = max(fitting, key=lambda r: (r.images_per_s, -r.batch)) if fitting else None
    first = nets.report(1)
    return Plan(
        model={"path": first.net.path, "name": first.net.name, "format": first.net.format},
        inputs={k: list(v) for k, v in first.inputs.items()}, dtype=first.dtype,
        device=first.device, convention=convention, memory_budget_bytes=budget,
        budget_origin=origin, budget_note=given.note, rows=rows, max_batch=best_fit,
        max_batch_memory_bytes=None if best_fit is None else nets.memory(best_fit),
        fixed_bytes=fixed, per_image_bytes=slope,
        best_batch=None if best is None else best.batch,
        warnings=(given.warning,) if given.warning else ())


# ---------------------------------------------------------------------------------------
# Output.


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan as ``--format json`` prints it (``schema_version`` 1)."""
    return {
        "schema_version": SCHEMA_VERSION, "model": dict(plan.model), "inputs": plan.inputs,
        "dtype": plan.dtype, "device": plan.device, "memory_budget_bytes":
        plan.memory_budget_bytes, "budget_origin": plan.budget_origin,
        "budget_note": plan.budget_note, "convention": plan.convention,
        "rows": [{"batch": r.batch, "time_ms": r.time_ms, "ms_per_image": r.ms_per_image,
                  "images_per_s": r.images_per_s, "memory_bytes": r.memory_bytes,
                  "fits": r.fits} for r in plan.rows],
        "max_batch": plan.max_batch, "max_batch_memory_bytes": plan.max_batch_memory_bytes,
        "memory_fixed_bytes": plan.fixed_bytes, "memory_per_image_bytes": plan.per_image_bytes,
        "best_batch": plan.best_batch, "warnings": list(plan.warnings),
    }


def _cells(r: PlanRow, plan: Plan) -> list[str]:
    def num(x: float | None, fmt: str) -> str:
        return "" if x is None else format(x, fmt)
    notes = [n for n, b in (("max batch", plan.max_batch), ("best images/s", plan.best_batch))
             if b == r.batch]
    return [str(r.batch), num(r.time_ms, ".3f"), num(r.ms_per_image, ".3f"),
            num(r.images_per_s, ".1f"), nbytes(r.memory_bytes),
            {None: "", True: "yes", False: "no"}[r.fits], ", ".join(notes)]


HEAD = ["batch", "time ms", "ms/image", "images/s", "memory", "fits", ""]


def header(plan: Plan) -> list[str]:
    """Three lines: the model, the device and budget, the memory convention."""
    m = plan.model
    ins = ", ".join(f"{k} {'×'.join(map(str, v[1:]))}" for k, v in plan.inputs.items())
    budget = "no memory budget" if plan.memory_budget_bytes is None else (
        f"budget {nbytes(plan.memory_budget_bytes)} ({plan.budget_origin}"
        + (f": {plan.budget_note}" if plan.budget_note else "") + ")")
    device = f"device {plan.device}" if plan.device else "no device (no time)"
    return [f"{m['name']} ({m['format']}, {m['path']}) · per image: {ins or 'no input'} · "
            f"{plan.dtype}",
            f"{device} · {budget}",
            f"memory = {CONVENTION_TEXT[plan.convention]}"]


def footer(plan: Plan) -> list[str]:
    lines = [f"memory = {nbytes(plan.fixed_bytes)} fixed + {nbytes(plan.per_image_bytes)} "
             "per image"]
    if plan.max_batch is not None:
        assert plan.memory_budget_bytes is not None and plan.max_batch_memory_bytes is not None
        used = plan.max_batch_memory_bytes / plan.memory_budget_bytes
        lines.append(f"max batch {plan.max_batch:,}: {nbytes(plan.max_batch_memory_bytes)}, "
                     f"{used:.1%} of {nbytes(plan.memory_budget_bytes)}")
    if plan.best_batch is not None:
        best = next(r for r in plan.rows if r.batch == plan.best_batch)
        lines.append(f"best throughput among these rows: batch {best.batch}, "
                     f"{best.images_per_s:.1f} images/s, {best.ms_per_image:.3f} ms per image")
    return lines + [f"warning: {w}" for w in plan.warnings]


def to_markdown(plan: Plan) -> str:
    h = header(plan)
    lines = [f"**{h[0]}**  ", f"{h[1]}  ", h[2], "", "| " + " | ".join(HEAD) + " |",
             "|" + "|".join("---:" for _ in HEAD[:-2]) + "|---|---|"]
    lines += ["| " + " | ".join(_cells(r, plan)) + " |" for r in plan.rows]
    return "\n".join(lines + [""] + [f"{x}  " for x in footer(plan)]) + "\n"


def to_table(plan: Plan, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    for line in header(plan):
        console.print(escape(line), highlight=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in HEAD:
        table.add_column(name, justify="right" if HEAD.index(name) < 5 else "left",
                         no_wrap=True)
    for r in plan.rows:
        style = "dim" if r.fits is False else None
        table.add_row(*_cells(r, plan), style=style)
    console.print(table)
    for line in footer(plan):
        console.print(escape(line), highlight=False)


# ---------------------------------------------------------------------------------------
# Command line.


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """--memory and --convention, shared with ``cnnstat report``."""
    p.add_argument("--memory", metavar="SIZE", help="memory budget, e.g. 8GiB or 512MiB "
                   "(default: the device profile's memory)")
    p.add_argument("--convention", choices=list(MEMORY_CONVENTIONS), default="caffe",
                   help="memory convention, as in 'cnnstat check' (default caffe: every "
                   "blob, one workspace per conv; peak: liveness peak, one shared workspace)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat plan", description=(
        "Largest batch that fits a memory budget, and predicted throughput over batch."))
    p.add_argument("model", help="a .prototxt or .onnx file, or REV:path")
    add_model_options(p)
    add_plan_options(p)
    p.add_argument("--batches", metavar="LIST", help="batches to list, e.g. 1,8,32 (default "
                   f"1, 2, 4, … up to the first that does not fit, or {NO_BUDGET_LAST} without "
                   "a budget)")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.batch is not None:
        raise CnnstatError("plan varies the batch itself: list batches with --batches "
                           "(e.g. --batches 1,8,32)")
    batches = parse_batches(args.batches) if args.batches else None
    plan = build_plan(args.model, args, args.convention, batches)
    if args.format == "json":
        write_output(json.dumps(plan_dict(plan), indent=2) + "\n", args.output)
    elif args.format == "markdown":
        write_output(to_markdown(plan), args.output)
    else:
        write_rich(lambda console: to_table(plan, console), args.output)
    return 0
