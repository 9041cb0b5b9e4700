"""``cnnstat devices [NAME]``: the device profiles cnnstat can predict time for.

Without a name: one row per profile (shipped in ``analyzer/devices/``, then local ones in
``~/.config/cnnstat/devices/``, which override a shipped profile of the same name) with its
hardware, where its measurements came from and its fit error. With a name or a .json path:
that profile's formulas per layer kind and its held-out errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from analyzer.errors import CnnstatError
from analyzer.render import nbytes
from analyzer.timing.profile import DEVICES_DIR, Profile, load_profile, profile_paths


def _text(value: Any) -> str:
    """A profile's provenance field as one line (calibrated profiles store dicts)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value) if value not in (None, "") else "—"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def summary(profile: Profile) -> dict[str, Any]:
    """The headline figures of a profile: fit error in and out of sample (fractions)."""
    q = profile.data.get("quality", {})
    held = q.get("holdout_runs", {})
    totals = held.get("totals", [])
    return {
        "name": profile.name, "path": profile.path,
        "shipped": profile.path.startswith(str(DEVICES_DIR)),
        "hardware": profile.data.get("hardware", ""),
        "software": profile.data.get("software", ""),
        "source": profile.data.get("source", ""),
        "per_layer_overhead_ms": profile.overhead_ms,
        "memory_bytes": profile.data.get("memory_bytes"),
        "memory_note": profile.data.get("memory_note"),
        "fusions": [list(f) for f in sorted(profile.fusions)],
        "fit_nets": q.get("nets", []), "fit_net_count": q.get("net_count"),
        "fit_points": q.get("points"),
        "in_sample_median_rel_error": q.get("in_sample", {}).get("median_rel_error"),
        "holdout_nets": q.get("holdout_per_layer", {}).get("nets", []),
        "holdout_layer_median_rel_error": held.get("per_layer_ge_1pct", {}).get(
            "median_rel_error"),
        "holdout_total_max_abs_rel_error": (max(abs(t["rel_error"]) for t in totals)
                                            if totals else None),
        # a calibrated profile checks a fit on 4/5 of its grid on the other fifth
        "holdout_points": q.get("holdout_per_layer", {}).get("points"),
        "holdout_point_median_rel_error": q.get("holdout_per_layer", {}).get(
            "median_rel_error"),
        "holdout_note": q.get("holdout_note"),
    }


def _list(profiles: list[Profile]) -> str:
    lines = []
    for p in profiles:
        s = summary(p)
        where = "shipped" if s["shipped"] else s["path"]
        if s["holdout_note"] and s["holdout_points"]:  # a calibrated profile: grid points
            held = (f"{s['holdout_note']}: per-layer median "
                    f"{_pct(s['holdout_point_median_rel_error'])} over {s['holdout_points']} "
                    "layers")
        elif s["holdout_nets"]:
            held = (f"held out {', '.join(s['holdout_nets'])}: net total within "
                    f"±{_pct(s['holdout_total_max_abs_rel_error'])}, per-layer median "
                    f"{_pct(s['holdout_layer_median_rel_error'])}")
        else:
            held = "no held-out check"
        nets = ", ".join(s["fit_nets"]) or f"{s['fit_net_count']} nets"
        lines += [f"{s['name']}  ({where})",
                  f"    hardware: {_text(s['hardware'])}",
                  f"    software: {_text(s['software'])}",
                  f"    source:   {_text(s['source'])}",
                  f"    fit:      {s['fit_points']} layer timings of {nets}; "
                  f"in-sample median error {_pct(s['in_sample_median_rel_error'])}; {held}",
                  f"    overhead: {s['per_layer_overhead_ms'] * 1000:.1f} µs per layer"]
        if s["memory_bytes"]:
            note = f": {s['memory_note']}" if s["memory_note"] else ""
            lines.append(f"    memory:   {nbytes(s['memory_bytes'])} (the budget of "
                         f"'cnnstat plan'){note}")
    return "\n".join(lines) + "\n" if lines else "no device profiles found\n"


def _detail(p: Profile) -> str:
    out = [_list([p]).rstrip("\n"), "    kinds (ms = Σ coef·term; points, in-sample median error):"]
    for kind, m in sorted(p.kinds.items()):
        out.append(f"      {kind:22s} {m.get('formula', '?'):60s} {m.get('points', '?'):>5} "
                   f"{_pct(m.get('in_sample', {}).get('median_rel_error'))}")
    if p.data.get("fallback"):
        out.append(f"      {'(other kinds)':22s} {p.data['fallback'].get('formula', '?')}  "
                   "— flagged as a fallback")
    state = p.data.get("probe")
    if isinstance(state, dict) and "ms" in state:
        out.append(f"    machine state at calibration: probe {state['ms']:.3f} ms "
                   f"({state.get('net', '?')}); {state.get('points_out_of_state', 0)} "
                   "point(s) never measured in that state")
    for t in p.data.get("quality", {}).get("holdout_runs", {}).get("totals", []):
        out.append(f"    held out {t['net']} batch {t['batch']}: measured "
                   f"{t['measured_ms']:.3f} ms, predicted {t['predicted_ms']:.3f} ms "
                   f"({t['rel_error']:+.1%})")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str]) -> int:
    from analyzer.commands.options import Parser

    ap = Parser(prog="cnnstat devices", description="List device time profiles.")
    ap.add_argument("name", nargs="?", help="show one profile (a name or a .json path)")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    if args.name:
        profiles = [load_profile(args.name, where='cnnstat devices')]
    else:
        profiles = []
        for name, path in profile_paths().items():
            try:
                profiles.append(load_profile(str(path)))
            except CnnstatError as e:
                print(f"cnnstat devices: skipping {name}: {e}")
    if args.format == "json":
        print(json.dumps([summary(p) for p in profiles], indent=1))
    elif args.name:
        print(_detail(profiles[0]), end="")
    else:
        print(_list(profiles), end="")
    return 0
