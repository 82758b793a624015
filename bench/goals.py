"""Every goal of issue 10 with its measured figure and PASS/MISS, and the table they are printed as.

:func:`goal_row` and :func:`goal_table` are shared by every benchmark script (``run.py``, ``parquet.py``,
``curves.py``, ``backfill.py``): each goal prints its measured figure (a ratio for a ratio goal), the goal,
measured/goal and PASS/MISS, under the load average at the start and the end of the run.
"""

from __future__ import annotations

from typing import Any

from bench.common import Bench, MiB


def goals(bench: Bench) -> list[dict[str, Any]]:
    """Every goal of issue 10 with the measured figure and PASS/MISS (MISS also when the figure is missing)."""
    by_name = {r["name"]: r for r in bench.rows}
    size = bench.args.size_mb
    out: list[dict[str, Any]] = []

    def goal(name: str, value: float | None, target: float, unit: str, higher_better: bool, note: str = "") -> None:
        out.append(goal_row(name, value, target, unit, higher_better, note))

    def ratio(name: str) -> float | None:
        row = by_name.get(name)
        return row.get("ratio") if row else None

    at = f"at {size} MiB" + ("" if size >= 1024 else " (the goal is at 1 GiB)")
    goal("land file utf-8 vs curl", ratio("land file utf-8"), 0.8, "x", True, at)
    to_file = by_name.get("curl utf-8 -> file")
    if to_file and by_name.get("land file utf-8"):
        same = by_name["land file utf-8"]["mib_s"] / to_file["mib_s"]
        out.append(
            {
                "goal": "  (reference: land file vs curl -o FILE)",
                "value": same,
                "target": 0.8,
                "unit": "x",
                "higher_is_better": True,
                "status": "info",
                "note": "both write the file; not a goal of issue 10",
            }
        )
    goal("land file utf-16 -> utf-8 vs curl utf-16", ratio("land file utf-16"), 0.6, "x", True, at)
    s3 = by_name.get("land s3 utf-8")
    s3_note = f"at {bench.info.get('s3', {}).get('bytes', 0) / MiB:.0f} MiB (the goal is at >= 256 MiB)"
    goal("land s3 vs boto3 upload_fileobj", ratio("land s3 utf-8"), 0.9, "x", True, s3_note)
    goal("land s3 RSS growth", s3.get("rss_growth_mib") if s3 else None, 150, "MiB", False, s3_note)
    curve = bench.info.get("rss_curve")
    if curve:
        first, last = curve[0], curve[-1]
        grow = last["provider_peak_mib"] - first["provider_peak_mib"]
        note = f"peak RSS at {last['size_mib']:.0f} MiB minus at {first['size_mib']:.0f} MiB"
        goal("provider peak RSS, small -> big report", grow, 32, "MiB", False, note)
    else:
        goal("provider peak RSS, small -> big report", None, 32, "MiB", False)
    trig = bench.info.get("triggers")
    if trig:
        note = f"{trig['links']:,} triggers; CPU {trig['cpu_seconds_per_round']:.2f}s per round"
        if trig["links"] < 10_000:
            note += " (the goal is at 10,000)"
        goal("waiting links: peak RSS", trig["peak_rss_mib"] * MiB / 1e6, 200, "MB", False, note)
        lag_target = trig["poll_interval"] + 1
        goal("waiting links: max delay ready -> event", trig["lag_max"], lag_target, "s", False, "poll + 1 s")
    else:
        goal("waiting links: peak RSS", None, 200, "MB", False)
        goal("waiting links: max delay ready -> event", None, bench.args.poll_interval + 1, "s", False)
    fixed = bench.info.get("fixed_cost")
    goal(
        "fixed cost of one report task",
        fixed["fixed_cost_seconds"] if fixed else None,
        0.3,
        "s",
        False,
        f"of which ObjectStoragePath's first use {fixed['object_storage_first_use_seconds']:.2f}s" if fixed else "",
    )
    for module, ms in bench.info.get("import_ms", {}).items():
        goal(f"import {module.rsplit('.', 2)[-2]}.{module.rsplit('.', 1)[-1]}", ms, 100, "ms", False)
    return out


def goal_row(
    name: str, value: float | None, target: float, unit: str, higher_better: bool, note: str = ""
) -> dict[str, Any]:
    """One goal: PASS when ``value`` meets ``target`` (>= when ``higher_better``, else <=), MISS when not,
    ``n/a`` when it was not measured."""
    met = value is not None and (value >= target if higher_better else value <= target)
    status = "n/a" if value is None else "PASS" if met else "MISS"
    return {
        "goal": name,
        "value": value,
        "target": target,
        "unit": unit,
        "higher_is_better": higher_better,
        "status": status,
        "note": note,
    }


def load_line(start: tuple[float, ...] | list[float], end: tuple[float, ...] | list[float] | None = None) -> str:
    """``load average 0.52 -> 1.10 (1-minute, at the start and the end of the run; 2 CPUs)``."""
    import os

    end = os.getloadavg() if end is None else end
    return (
        f"load average {start[0]:.2f} -> {end[0]:.2f} (1-minute, at the start and the end of the run; "
        f"{os.cpu_count()} CPUs)"
    )


def goal_table(goals: list[dict[str, Any]], load: str | None = None) -> str:
    """The goals as a table: measured, goal, measured/goal, PASS/MISS, note; ``load`` (:func:`load_line`) on top."""
    lines = [f"  {load}"] if load else []
    lines.append(f"  {'goal':<44} {'measured':>10} {'goal':>10} {'meas/goal':>9}  result  note")
    for g in goals:
        value = "-" if g["value"] is None else f"{g['value']:.2f}{g['unit']}"
        op = ">=" if g["higher_is_better"] else "<="
        of_goal = "-" if g["value"] is None or not g["target"] else f"{g['value'] / g['target']:.2f}"
        lines.append(
            f"  {g['goal']:<44} {value:>10} {op + ' ' + format(g['target'], 'g') + g['unit']:>10} {of_goal:>9}  "
            f"{g['status']:<6}  {g['note']}"
        )
    return "\n".join(lines)
