"""A measured child process: ``main(["--child", CASE, SPEC_JSON])`` runs CASE and writes its figures to the JSON
file ``SPEC["result"]`` (with the process's own peak RSS, ``vmhwm_kib``).

Only the part module that has CASE is imported, and inside it only what the case measures.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import proc_status_kib

#: case -> the part module with its ``child(case, spec)`` function
CASES = {
    "provider_devnull": "download",
    "provider_land": "download",
    "stages": "download",
    "boto3_upload": "s3",
    "moto": "s3",
    "peer_land": "rss",
    "request_links": "triggers",
    "triggers": "triggers",
    "fixed_bare": "fixed",
    "fixed_provider": "fixed",
    "fixed_provider_warm_fs": "fixed",
    "curve_typed": "curves",
    "curve_peer": "curves",
}


def run_case(case: str, spec: dict[str, Any]) -> None:
    """Run ``case`` in this process and write its figures (``moto`` serves until SIGTERM and writes none)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    if case not in CASES:
        raise SystemExit(f"unknown child case {case!r}")
    module = importlib.import_module(f"bench.{CASES[case]}")
    out: dict[str, Any] | None = module.child(case, spec)
    if out is None:
        return
    out = {"case": case, **out}
    out["vmhwm_kib"] = proc_status_kib("VmHWM")
    Path(spec["result"]).write_text(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    """``--child CASE SPEC_JSON`` (what ``bench.common.CHILD`` runs)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "--child":
        raise SystemExit("usage: --child CASE SPEC_JSON")
    run_case(args[1], json.loads(args[2]))
    return 0
