"""Throughput and memory benchmarks of the provider's download and landing paths, each against a baseline.

Run ``make bench`` (or ``.venv/bin/python bench/run.py``); ``--quick`` uses a 64 MiB report, the default 1024 MiB.
``bench/README.md`` says what is measured and how to read the ratios.

The parent process starts the bundled Report.aspx emulator (``big_report_bytes`` = the size, ResponseMode 3: the
CSV is sent from disk with sendfile) and, for the S3 part, moto's S3 server in a process of its own. Every measured
client (curl, the provider, boto3) runs in a fresh child process, so its peak RSS is its own; a Python child also
reports its RSS just before the transfer starts (after imports, connection lookup and client set-up), so the growth
during the transfer shows. A child runs :mod:`bench.child` (``--child CASE SPEC_JSON``, see ``bench.common.CHILD``),
which imports only the part module of its case; it writes its figures to the JSON file ``SPEC["result"]``.

This file is the command line; the parts are modules of the ``bench`` package: ``download``, ``s3``, ``rss``,
``triggers``, ``fixed`` (each has its ``--no-PART``), ``goals``, and ``common`` for what they share.

Nothing here touches the user's Airflow: ``AIRFLOW_HOME`` is a temporary directory, connections are
``AIRFLOW_CONN_*`` environment variables, no metadata database is used. ``land_object`` gets
``{"ti": XcomSink()}`` as its context: it only ever calls ``context["ti"].xcom_push``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the bench package from the checkout, not bench/ itself
    _ROOT = str(Path(__file__).resolve().parent.parent)
    sys.path[:] = [_ROOT, *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from bench import download, fixed, rss, s3, triggers
from bench.common import (
    CLOUDMAX_CONN_ID,
    END,
    GNU_TIME,
    LAUNCH_IDS,
    REPORT_PART_ID,
    RESULTS,
    ROOT,
    START,
    Bench,
    MiB,
    git_head,
    results_table,
)
from bench.goals import goal_table, goals, load_line

PARTS = ("download", "s3", "rss", "triggers", "fixed")  # each has its --no-PART; --only PART runs just that one


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; ``--quick`` and ``--only`` already applied to the others."""
    ap = argparse.ArgumentParser(description="Cloudmax provider benchmarks (see bench/README.md)")
    ap.add_argument("--size-mb", type=int, default=1024, help="report size in MiB (default 1024)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a 64 MiB report, one run per case, 2,000 links polled every 5 s (about two minutes)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of each download case; the median is shown (3)")
    ap.add_argument("--s3-cap-mb", type=int, default=256, help="largest S3 upload in MiB (default 256)")
    ap.add_argument("--s3-repeat", type=int, default=5, help="runs of each S3 case, in turns (5; 1 with --quick)")
    ap.add_argument("--no-s3", action="store_true", help="skip the S3 part")
    ap.add_argument("--no-download", action="store_true", help="skip the download part")
    ap.add_argument("--no-rss", action="store_true", help="skip peak RSS against report size (and the plot)")
    ap.add_argument("--no-triggers", action="store_true", help="skip the waiting-links part")
    ap.add_argument("--no-fixed", action="store_true", help="skip the fixed cost and import time")
    ap.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable): e.g. --only triggers is --no-download --no-s3 --no-rss --no-fixed",
    )
    ap.add_argument("--links", type=int, default=10_000, help="links for the trigger part (10,000)")
    ap.add_argument(
        "--poll-interval", type=float, default=30.0, help="the triggers' poll_interval (30 s, the operator's default)"
    )
    ap.add_argument("--fixed-repeat", type=int, default=3, help="runs of each fixed-cost case (3)")
    ap.add_argument("--plot", type=Path, default=ROOT / ".bench" / "rss_vs_size.png", help="the RSS plot (PNG)")
    ap.add_argument(
        "--profile",
        metavar="LABEL",
        help="also run each landing case once under py-spy: bench/profiles/LABEL-CASE-SIZE.svg flame graphs",
    )
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results (default .bench/results.json)")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for part in PARTS if args.only else ():
        if part not in args.only:
            setattr(args, f"no_{part}", True)
    if args.quick:
        args.size_mb = 64
        args.poll_interval = min(args.poll_interval, 5.0)
        args.fixed_repeat = 1
        args.repeat = 1
        args.s3_repeat = 1
        args.links = min(args.links, 2000)
    return args


def isolate_airflow(work: Path) -> None:
    """A throw-away AIRFLOW_HOME and fake AWS credentials for this process and its children."""
    home = work / "airflow-home"
    home.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'unused.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(key, None)
    # Children start faster with byte code cached (PYTHONDONTWRITEBYTECODE would make every child compile
    # Airflow from source); the cache lives in the git-ignored .bench/, never in the venv. Set-up only.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(ROOT / ".bench" / "pycache")


def connect(emu: Any, login: str, password: str) -> dict[str, str]:
    """The bench connection (an env variable) to the emulator; returns the provider's exact POST form."""
    from cloudmax_provider.api.request import Credentials, build_report_request, encode_request

    os.environ[f"AIRFLOW_CONN_{CLOUDMAX_CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "cloudmax",
            "host": emu.base_url,
            "login": login,
            "password": password,
            "extra": {"timeout": 120, "timezone": "Asia/Taipei"},
        }
    )
    request = build_report_request(REPORT_PART_ID, LAUNCH_IDS, START, END, timezone="Asia/Taipei", response_mode=3)
    wire = encode_request(emu.endpoint_url, request.fields(), Credentials(login, password))
    return dict(wire.data or ())  # exactly the provider's POST form, credentials included


def print_banner(args: argparse.Namespace, load_before: tuple[float, float, float]) -> None:
    """The run's size, repeats, machine, load and commit; notes when the figures will be noisy or ceilings."""
    print(
        f"Cloudmax provider benchmark: {args.size_mb} MiB report, {args.repeat} run(s) per download case; "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f}, Python {platform.python_version()}, "
        f"commit {git_head()}",
        flush=True,
    )
    if load_before[0] > (os.cpu_count() or 1) / 2:
        print(
            "  note: the machine is busy (load average above half the CPUs): rates will be lower and noisier",
            flush=True,
        )
    if not GNU_TIME:
        print("  note: no /usr/bin/time: curl's peak RSS includes this process's RSS (a ceiling)", flush=True)


def run_parts(bench: Bench, emu: Any, size: int, fields: dict[str, str]) -> None:
    """Each part not skipped, in order: download, S3, RSS curve, waiting links, fixed cost and import time."""
    args = bench.args
    if not args.no_download:
        print(f"\n# download: emulator at {emu.base_url}", flush=True)
        download.run(bench, emu, size, fields)
    if not args.no_s3:
        print("\n# S3 upload: moto's S3 server in its own process on loopback", flush=True)
        s3.run(bench, emu, size)
    if not args.no_rss:
        sizes = sorted({10 * MiB, *([64 * MiB, 256 * MiB] if size > 256 * MiB else []), size})
        rss.run(bench, emu, [m for m in sizes if m <= size], fields)
    if not args.no_triggers:
        print(f"\n# waiting links: {args.links:,} triggers on one event loop, against the emulator", flush=True)
        triggers.run(bench, emu)
    if not args.no_fixed:
        fixed.run(bench, emu, fields)
        fixed.import_cost(bench)


def report(bench: Bench, total: float, load_before: tuple[float, float, float]) -> None:
    """Print the results and goals tables and write every figure to ``--output``."""
    args = bench.args
    measured = goals(bench)
    print("\n# results" + results_table(bench.rows))
    print(f"\n# goals (issue 10), {args.size_mb} MiB run\n" + goal_table(measured, load_line(load_before)))
    print(
        f"\nTotal run time {total:.0f}s (load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at "
        "the end). MiB/s = source bytes / seconds of the transfer itself (set-up excluded); ratio = case / baseline, "
        "1.00 = as fast as the baseline. Peak RSS = the process's own high-water mark, 'before' = its RSS just "
        "before the transfer, growth = peak - before."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "size_mib": args.size_mb,
        "quick": bool(args.quick),
        "repeat": args.repeat,
        "total_seconds": total,
        "load_average": {"start": load_before, "end": os.getloadavg()},
        "commit": git_head(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "info": bench.info,
        "goals": measured,
        "results": bench.rows,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Results written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (or, with the hidden ``--child CASE SPEC``, one measured case)."""
    args = parse_args(argv)
    if args.child:
        from bench.child import run_case

        run_case(args.child[0], json.loads(args.child[1]))
        return 0
    started = time.perf_counter()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="cloudmax-bench-"))
    isolate_airflow(work)

    from cloudmax_provider.testing.emulator import CloudmaxEmulator, EmulatorSettings

    login, password = "bench", "bench-password"
    settings = EmulatorSettings(accounts={login: password}, big_report_bytes=args.size_mb * MiB)
    emu = CloudmaxEmulator(settings).start()
    bench = Bench(args, work)
    try:
        fields = connect(emu, login, password)
        print_banner(args, load_before)
        run_parts(bench, emu, args.size_mb * MiB, fields)
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(bench, time.perf_counter() - started, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
