"""``make demo``: run an example DAG against the bundled emulator, no Cloudmax account needed.

Starts the Report.aspx emulator on a free loopback port, points the ``cloudmax_default`` connection
at it, migrates a private SQLite metadata DB under ``.demo/``, runs ``example_dags/<dag>.py`` with
``dag.test()`` and prints the absolute path of every report file it wrote.

    python -m cloudmax_provider.testing.demo [--dag cloudmax_daily_report] [--dags-folder example_dags]

Without ``--dags-folder`` it uses ``./example_dags`` when there is one (a checkout), else the example DAGs
installed with the package (``cloudmax_provider.example_dags``, so the demo runs from the wheel too).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path


def default_dags_folder() -> Path:
    """``./example_dags`` in a checkout, else the example DAGs shipped in the wheel."""
    local = Path("example_dags")
    if local.is_dir():
        return local
    spec = importlib.util.find_spec("cloudmax_provider.example_dags")
    if spec is None or not spec.submodule_search_locations:
        return local
    return Path(next(iter(spec.submodule_search_locations)))


def unsupported(dag_id: str) -> str | None:
    """Why this environment cannot run the example ``dag_id`` (None: it can): the lake example's embedded
    catalog is pyiceberg's SQL catalog, which needs the ``[iceberg]`` extra and SQLAlchemy 2 (Airflow 3.1+)."""
    if dag_id != "cloudmax_lake_tables":
        return None
    if importlib.util.find_spec("pyiceberg") is None:
        return "the [iceberg] extra is not installed (pip install 'airflow-provider-cloudmax[iceberg]')"
    import sqlalchemy

    if int(sqlalchemy.__version__.split(".")[0]) < 2:
        return f"pyiceberg's SQL catalog needs SQLAlchemy 2; this Airflow pins {sqlalchemy.__version__}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cloudmax_provider.testing.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--dag", default="cloudmax_daily_report", help="example DAG id (= file name)")
    ap.add_argument("--dags-folder", default=None, help="default: ./example_dags, else the installed examples")
    ap.add_argument("--workdir", default=".demo", help="AIRFLOW_HOME, DB and the local lake go here")
    ap.add_argument("--if-supported", action="store_true", help="a DAG this Airflow cannot run: say why, exit 0")
    args = ap.parse_args(argv)
    why = unsupported(args.dag)
    if why:
        print(f"The {args.dag} demo does not run here: {why}", file=sys.stderr)
        return 0 if args.if_supported else 2

    work = Path(args.workdir).resolve()
    dags = Path(args.dags_folder or default_dags_folder()).resolve()
    dag_file = dags / f"{args.dag}.py"
    if not dag_file.is_file():
        print(f"no DAG file {dag_file}", file=sys.stderr)
        return 2
    shutil.rmtree(work / "airflow", ignore_errors=True)
    lake = work / "lake"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(work / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow' / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_VAR_CLOUDMAX_LAKE": lake.as_uri(),  # the example DAGs' storage root (an Airflow Variable)
        }
    )
    (work / "airflow").mkdir(parents=True, exist_ok=True)

    from cloudmax_provider.testing.emulator import CloudmaxEmulator

    catalog = {"type": "sql", "uri": f"sqlite:///{lake / 'catalog.db'}", "warehouse": (lake / "warehouse").as_uri()}
    # the lake-tables example's Iceberg catalog: pyiceberg's SQL catalog on SQLite under the demo's lake
    os.environ["AIRFLOW_CONN_CLOUDMAX_ICEBERG"] = json.dumps({"conn_type": "iceberg", "extra": catalog})
    with CloudmaxEmulator() as emu:
        print(f"Cloudmax emulator listening on {emu.endpoint_url}", flush=True)
        os.environ["AIRFLOW_CONN_CLOUDMAX_DEFAULT"] = json.dumps(
            {"conn_type": "cloudmax", "host": emu.base_url, "login": "demo", "password": "demo-password"}
        )
        lake.mkdir(parents=True, exist_ok=True)
        from airflow.utils import db

        print("Migrating the demo metadata DB (SQLite) ...", flush=True)
        db.resetdb()
        spec = importlib.util.spec_from_file_location(f"demo_{args.dag}", dag_file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        from airflow.providers.common.compat.sdk import DAG

        from cloudmax_provider.utils.compat import write_dags_to_db

        # The example's publish task declares Assets of its own: Airflow 3.0's dag.test() refuses outlet Assets
        # no DAG in the DB names, and 2.11's records no event for them. A user runs `airflow dags reserialize`
        # first (docs/compatibility.md); the provider's own outlets need nothing.
        write_dags_to_db(*(value for value in vars(module).values() if isinstance(value, DAG)))
        run = module.dag.test()
        state = str(run.state)
        print(f"DAG {args.dag}: {state}; Report.aspx was called {len(emu.api_requests)} time(s)")
    if (lake / "catalog.db").exists():
        return _print_tables(lake, catalog, state)
    written = sorted(p for p in lake.rglob("*.csv")) if lake.exists() else []
    for path in written:
        print(f"Report written: {path.resolve()}")
    if state != "success" or not written:
        print("The demo failed: see the log above.", file=sys.stderr)
        return 1
    import csv
    import io

    records = list(csv.reader(io.StringIO(written[0].read_bytes().decode("utf-8"), newline="")))
    print(f"{written[0]}: {len(records) - 1} rows; columns: {','.join(records[0])}")
    return 0


def _print_tables(lake: Path, properties: dict[str, str], state: str) -> int:
    """The Iceberg tables a DAG landed in the demo's catalog: each one's location and row count."""
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog("cloudmax_iceberg", **properties)  # as IcebergHook names it: the connection id
    tables = [(ns, name) for ns in catalog.list_namespaces() for _, name in catalog.list_tables(ns)]
    for namespace, name in tables:
        table = catalog.load_table((*namespace, name))
        print(f"Table {'.'.join((*namespace, name))}: {table.scan().to_arrow().num_rows} rows at {table.location()}")
    print(f"Catalog: {lake / 'catalog.db'} (pyiceberg's SQL catalog; docs/lake-tables.md reads it with DuckDB)")
    if state != "success" or not tables:
        print("The demo failed: see the log above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
