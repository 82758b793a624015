"""The RSS part: peak RSS against report size, the provider (``land_object`` -> ``file://``) and the peer pattern
(``requests.post(...).content``, then ``write_bytes``), one fresh process per point, and the plot."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.common import REPORT_PART_ID, Bench, MiB, start, stop

# ==== child side ================================================================================================


def child(case: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``peer_land``: what a DAG author writes without the provider, the whole body in memory."""
    import airflow.sdk  # noqa: F401 - a task process has Airflow loaded, as the provider's has
    import requests

    out: dict[str, Any] = {}
    dest = Path(spec["path"])
    t0, c0 = start(out)
    body = requests.post(spec["url"], data=spec["fields"], timeout=600).content
    dest.write_bytes(body)
    stop(out, t0, c0)
    out["bytes_in"] = out["bytes_out"] = len(body)
    return out


# ==== parent side ===============================================================================================


def run(bench: Bench, emu: Any, sizes: list[int], fields: dict[str, str]) -> None:
    """Peak RSS against report size: the provider (land_object -> file://) and the peer pattern."""
    emu.settings.csv_encoding = "utf-8"
    points: list[dict[str, Any]] = []
    print(f"\n## peak RSS against report size ({', '.join(str(m // MiB) for m in sizes)} MiB)", flush=True)
    print(f"  {'size MiB':>8} {'provider peak':>14} {'growth':>7} {'peer peak':>10} {'growth':>7}", flush=True)
    out_dir = bench.work / "rss"
    for size in sizes:
        emu.settings.big_report_bytes = size
        _, nbytes, rows = emu.big_report_info(REPORT_PART_ID)
        out_dir.mkdir(exist_ok=True)
        dest = out_dir / "report.csv"
        prov = bench.run_python("provider_land", {"uri": dest.as_uri(), "conn_id": None, "source_bytes": nbytes})
        assert prov["rows"] == rows and dest.stat().st_size == nbytes, (prov, rows, nbytes)
        peer = bench.run_python("peer_land", {"url": emu.endpoint_url, "fields": fields, "path": str(dest)})
        assert peer["bytes_out"] == nbytes == dest.stat().st_size, (peer, nbytes)
        shutil.rmtree(out_dir, ignore_errors=True)
        point = {
            "size_mib": nbytes / MiB,
            "provider_peak_mib": prov["vmhwm_kib"] / 1024,
            "provider_before_mib": prov["rss_before_kib"] / 1024,
            "peer_peak_mib": peer["vmhwm_kib"] / 1024,
            "peer_before_mib": peer["rss_before_kib"] / 1024,
        }
        points.append(point)
        print(
            f"  {point['size_mib']:8.0f} {point['provider_peak_mib']:14.0f} "
            f"{point['provider_peak_mib'] - point['provider_before_mib']:+7.0f} {point['peer_peak_mib']:10.0f} "
            f"{point['peer_peak_mib'] - point['peer_before_mib']:+7.0f}",
            flush=True,
        )
    bench.info["rss_curve"] = points
    plot(bench, points)


def plot(bench: Bench, points: list[dict[str, Any]]) -> None:
    """Peak RSS against report size, both lines on log-log axes, into ``--plot`` (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  matplotlib not installed (the bench extra has it): no plot", flush=True)
        return
    sizes = [p["size_mib"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(sizes, [p["provider_peak_mib"] for p in points], "o-", label="provider: land_object -> file://")
    ax.plot(sizes, [p["peer_peak_mib"] for p in points], "s--", label="peer: requests.post().content, then write")
    from matplotlib.ticker import ScalarFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("report size (MiB)")
    ax.set_ylabel("peak RSS of the process (MiB; Airflow loaded)")
    ax.set_title("Peak memory against report size (one process per point)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    bench.args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(bench.args.plot)
    plt.close(fig)
    bench.info["plot"] = str(bench.args.plot)
    print(f"  plot written to {bench.args.plot}", flush=True)
