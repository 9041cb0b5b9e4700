"""``cnnstat check MODEL... --max-params 5M ...``: gate a model on cost budgets.

Exit status 0 when every model is within every budget, 1 when one is exceeded (one line per
exceeded budget, naming the model, the figure, the limit and where the limit came from),
2 for bad input (a model cnnstat cannot read, a malformed budget, a time budget without a
device).

Budgets (units stated once): ``max-macs``, ``max-flops``, ``max-params`` are counts
(K/M/G/T = 10³…10¹²); ``max-memory`` (params + data + workspace), ``max-data``,
``max-workspace`` are bytes (KiB/MiB/GiB = 2¹⁰…, KB/MB/GB = 10³…; a bare K/M/G is
refused as ambiguous); ``max-time-ms`` (the whole forward pass) and ``max-layer-time-ms``
(any one layer) are milliseconds and need a device profile. Memory follows the Caffe
convention (every top; one im2col buffer per convolution) unless ``--convention peak``
(liveness peak; one shared workspace).

Budgets may live in the repository: ``.cnnstat.toml`` (top-level keys) or the
``[tool.cnnstat]`` table of ``pyproject.toml``, the first found from the model's directory
upward (then from the current directory upward); in one directory ``.cnnstat.toml`` wins.
Besides the budgets the config may set ``device``, ``batch``, ``dtype`` and ``convention``.
Flags override the config, key by key.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from analyzer.analysis import Report
from analyzer.commands.options import Parser, add_model_options, analyze_path
from analyzer.errors import CnnstatError
from analyzer.frontends.sources import parse_source
from analyzer.render import count, nbytes

try:  # Python ≥ 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None  # type: ignore[assignment]

COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
TIME_UNITS = {"": Decimal(1), "ms": Decimal(1), "s": Decimal(1000), "us": Decimal("0.001"),
              "µs": Decimal("0.001")}
_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-zµ]*)$")


def _split(text: str, what: str) -> tuple[Decimal, str]:
    m = _NUMBER.match(text.strip().replace("_", "").replace(",", ""))
    if not m:
        raise CnnstatError(f"{what}: expected a number with an optional unit, got '{text}'")
    try:
        return Decimal(m.group(1)), m.group(2).lower()
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise CnnstatError(f"{what}: not a number: '{text}'") from None


def parse_count(text: str | int | float, what: str = "count") -> int:
    """'5M' → 5000000, '2.5G' → 2500000000, 1200 → 1200 (decimal prefixes)."""
    value, unit = _split(str(text), what)
    if unit not in COUNT_UNITS:
        raise CnnstatError(f"{what}: unknown unit '{unit}' in '{text}' (use K, M, G or T)")
    return int(value * COUNT_UNITS[unit])


def parse_bytes(text: str | int | float, what: str = "bytes") -> int:
    """'200MiB' → 209715200, '1.5GB' → 1500000000, 4096 → 4096."""
    value, unit = _split(str(text), what)
    if unit in ("k", "m", "g", "t"):
        raise CnnstatError(f"{what}: '{text}' is ambiguous for bytes: write "
                           f"{unit.upper()}iB (2^10 steps) or {unit.upper()}B (10^3 steps)")
    if unit not in BYTE_UNITS:
        raise CnnstatError(f"{what}: unknown unit '{unit}' in '{text}' "
                           "(use B, KiB, MiB, GiB, KB, MB or GB)")
    return int(value * BYTE_UNITS[unit])


def parse_ms(text: str | int | float, what: str = "time") -> float:
    """'40' → 40.0 ms, '0.04s' → 40.0, '500us' → 0.5."""
    value, unit = _split(str(text), what)
    if unit not in TIME_UNITS:
        raise CnnstatError(f"{what}: unknown unit '{unit}' in '{text}' (use ms, s or us)")
    return float(value * TIME_UNITS[unit])


# ---------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class BudgetKind:
    """One kind of budget: its key (flag without '--'), a label, a unit and a measure."""

    key: str
    label: str
    unit: str  # count | bytes | ms
    measure: Callable[[Report, str], float | None]
    help: str


BUDGETS: tuple[BudgetKind, ...] = (
    BudgetKind("max-time-ms", "time", "ms", lambda r, c: r.totals.time_ms,
               "predicted forward time of the whole net, ms (needs --device)"),
    BudgetKind("max-layer-time-ms", "layer time", "ms",
               lambda r, c: max((x.time_ms or 0.0 for x in r.layers), default=0.0)
               if r.totals.time_ms is not None else None,
               "predicted forward time of any one layer, ms (needs --device)"),
    BudgetKind("max-macs", "MACs", "count", lambda r, c: r.totals.macs,
               "multiply-accumulates (e.g. 2G)"),
    BudgetKind("max-flops", "FLOPs", "count", lambda r, c: r.totals.flops, "FLOPs (e.g. 4G)"),
    BudgetKind("max-params", "params", "count", lambda r, c: r.totals.params,
               "learnable parameters (e.g. 5M)"),
    BudgetKind("max-memory", "memory", "bytes", lambda r, c: r.totals.memory(c),
               "params + data + workspace bytes (e.g. 200MiB)"),
    BudgetKind("max-data", "data memory", "bytes", lambda r, c: r.totals.data(c),
               "intermediate data bytes"),
    BudgetKind("max-workspace", "workspace", "bytes",
               lambda r, c: r.totals.workspace(c), "im2col workspace bytes"),
)
BY_KEY = {b.key: b for b in BUDGETS}
CONFIG_KEYS = {*BY_KEY, "device", "batch", "dtype", "convention"}


def parse_limit(kind: BudgetKind, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CnnstatError(f"{what}: expected a number or a string like '5M', got {value!r}")
    parse = {"count": parse_count, "bytes": parse_bytes, "ms": parse_ms}[kind.unit]
    limit = parse(value, what)
    if limit < 0:  # pragma: no cover - the pattern admits no sign
        raise CnnstatError(f"{what}: must not be negative")
    return limit


def show(kind: BudgetKind, value: float) -> str:
    """A figure as exact number plus rounded form: '60,965,224 (61M)', '3.210 ms'."""
    if kind.unit == "ms":
        return f"{value:.3f} ms"
    if kind.unit == "bytes":
        return f"{int(value):,} B ({nbytes(value)})"
    return f"{int(value):,} ({count(value)})"


@dataclass(frozen=True)
class Budget:
    kind: BudgetKind
    limit: float
    origin: str  # '--max-params' or 'pyproject.toml [tool.cnnstat]'


def over_budget(report: Report, budgets: Sequence[Budget], convention: str) -> list[str]:
    """One line per exceeded budget (empty when all are met)."""
    lines = []
    for b in budgets:
        value = b.kind.measure(report, convention)
        if value is None:
            raise CnnstatError(f"{b.kind.key} needs a device profile: give --device or "
                               "'device' in the config")
        if value <= b.limit:
            continue
        where = f"{b.origin} {b.kind.key}" if not b.origin.startswith("--") else b.origin
        if b.kind.key == "max-layer-time-ms":
            over = sorted((r for r in report.layers if (r.time_ms or 0.0) > b.limit),
                          key=lambda r: -(r.time_ms or 0.0))
            names = ", ".join(f"'{r.layer.name}' {r.time_ms:.3f} ms" for r in over[:5])
            more = f" and {len(over) - 5} more" if len(over) > 5 else ""
            lines.append(f"{len(over)} layer(s) over {b.limit:g} ms ({where}): {names}{more}")
        else:
            lines.append(f"{b.kind.label} {show(b.kind, value)} > {show(b.kind, b.limit)} "
                         f"({where})")
    return lines


# ---------------------------------------------------------------------------------------
# Config files


@dataclass(frozen=True)
class Config:
    """Settings read from a config file: the table and where it came from."""

    path: Path
    origin: str  # '.cnnstat.toml' or 'pyproject.toml [tool.cnnstat]', with the path
    values: Mapping[str, Any]


def _load_toml(path: Path) -> dict[str, Any]:
    if _toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise CnnstatError("reading budgets from a TOML file needs Python 3.11 or the "
                           "'tomli' package (pip install tomli)", str(path))
    try:
        with open(path, "rb") as fh:
            return _toml.load(fh)
    except OSError as e:
        raise CnnstatError(f"cannot read: {e.strerror}", str(path)) from None
    except _toml.TOMLDecodeError as e:
        raise CnnstatError(f"not valid TOML: {e}", str(path)) from None


def read_config(path: Path) -> Config | None:
    """The cnnstat settings in ``path`` (None for a pyproject.toml without [tool.cnnstat])."""
    data = _load_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("cnnstat")
        if table is None:
            return None
        origin = f"{path} [tool.cnnstat]"
    else:
        table, origin = data, str(path)
    if not isinstance(table, dict):
        raise CnnstatError("[tool.cnnstat] must be a table", str(path))
    values: dict[str, Any] = {}
    for key, value in table.items():
        canon = key.replace("_", "-")
        if canon not in CONFIG_KEYS:
            raise CnnstatError(f"unknown key '{key}' in {origin} (known: "
                               f"{', '.join(sorted(CONFIG_KEYS))})", str(path))
        values[canon] = value
    return Config(path, origin, values)


def find_config(start: Path) -> Config | None:
    """The first ``.cnnstat.toml`` or ``pyproject.toml`` with [tool.cnnstat] from ``start`` up."""
    start = start.resolve()
    for folder in (start, *start.parents):
        for name in (".cnnstat.toml", "pyproject.toml"):
            candidate = folder / name
            if candidate.is_file():
                config = read_config(candidate)
                if config is not None:
                    return config
    return None


def config_for(model: str, explicit: str | None, use_config: bool) -> Config | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CnnstatError("no such config file", explicit)
        return read_config(path) or Config(path, f"{path} (no [tool.cnnstat])", {})
    if not use_config:
        return None
    if parse_source(model) is None:
        found = find_config(Path(model).resolve().parent)
        if found is not None:
            return found
    return find_config(Path.cwd())


# ---------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat check", description=(
        "Fail (exit 1) when a model exceeds a cost budget. Budgets come from flags or from "
        ".cnnstat.toml / pyproject.toml [tool.cnnstat]; flags win."))
    p.add_argument("models", nargs="+", metavar="MODEL", help="model sources (path or REV:path)")
    add_model_options(p)
    for b in BUDGETS:
        p.add_argument(f"--{b.key}", metavar="LIMIT", help=b.help)
    p.add_argument("--convention", choices=["caffe", "peak"],
                   help="memory convention for max-memory/max-data/max-workspace "
                   "(default caffe: every blob, one workspace per conv)")
    p.add_argument("--config", help="read budgets from this TOML file instead of searching")
    p.add_argument("--no-config", action="store_true", help="ignore config files")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing for models within "
                   "budget")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _given(argv: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _settings(args: argparse.Namespace, argv: Sequence[str], config: Config | None
              ) -> tuple[argparse.Namespace, list[Budget], str]:
    """The per-model options: flags, then the config's values for what flags left unset."""
    ns = argparse.Namespace(**vars(args))
    conf = dict(config.values) if config else {}
    if config is not None:
        if ns.device is None and "device" in conf:
            device = str(conf["device"])
            if device.endswith(".json") and not Path(device).is_absolute():
                device = str(config.path.parent / device)
            ns.device = device
        if ns.batch is None and "batch" in conf:
            if not isinstance(conf["batch"], int) or isinstance(conf["batch"], bool):
                raise CnnstatError(f"batch must be an integer, got {conf['batch']!r}",
                                   config.origin)
            ns.batch = conf["batch"]
        if not _given(argv, "--dtype") and "dtype" in conf:
            ns.dtype = str(conf["dtype"])
    convention = ns.convention or str(conf.get("convention", "caffe"))
    if convention not in ("caffe", "peak"):
        raise CnnstatError(f"convention must be caffe or peak, got '{convention}'",
                           config.origin if config else None)
    budgets = []
    for kind in BUDGETS:
        flag = getattr(ns, kind.key.replace("-", "_"))
        if flag is not None:
            budgets.append(Budget(kind, parse_limit(kind, flag, f"--{kind.key}"),
                                  f"--{kind.key}"))
        elif kind.key in conf:
            assert config is not None
            budgets.append(Budget(kind, parse_limit(kind, conf[kind.key],
                                                    f"{config.origin} {kind.key}"),
                                  config.origin))
    return ns, budgets, convention


def check_model(model: str, args: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    """The reasons ``model`` is over budget (empty: within); raises CnnstatError."""
    config = config_for(model, args.config, not args.no_config)
    ns, budgets, convention = _settings(args, argv, config)
    if not budgets:
        raise CnnstatError("no budget to check: give --max-params, --max-macs, --max-memory, "
                           "… or put them in .cnnstat.toml or pyproject.toml [tool.cnnstat]",
                           model)
    timed = [b.kind.key for b in budgets if b.kind.unit == "ms"]
    if timed and not ns.device:
        raise CnnstatError(f"{', '.join(timed)} needs a device profile: give --device or "
                           "'device' in the config", model)
    report = analyze_path(model, ns)
    reasons = over_budget(report, budgets, convention)
    if not reasons and not args.quiet:
        met = ", ".join(f"{b.kind.label} ≤ {show(b.kind, b.limit).split(' (')[0]}"
                        for b in budgets)
        print(f"{model}: within budget ({met})")
    return reasons


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    status = 0
    for model in args.models:
        try:
            reasons = check_model(model, args, argv)
        except CnnstatError as e:
            if args.debug:
                raise
            print(f"cnnstat: {e}", file=sys.stderr)
            status = 2
            continue
        for reason in reasons:
            print(f"{model}: over budget: {reason}")
        if reasons:
            status = max(status, 1)
    return status
