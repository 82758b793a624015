"""The session's SQLite files are never opened by the pytest process itself (tests/conftest.py's audit hook):
closing such a descriptor drops SQLite's POSIX locks, and the next ``airflow`` subprocess then deletes the WAL
under this process's connections (the "database disk image is malformed" of issue 20)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.usefixtures("airflow_db")
def test_the_live_db_cannot_be_opened_here_and_another_process_reads_it() -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    with pytest.raises(PermissionError, match="live SQLite file"):
        (home / "airflow.db").read_bytes()
    with pytest.raises(PermissionError, match="live SQLite file"):
        os.open(home / "airflow.db-wal", os.O_RDONLY)
    read = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read(16))"
    head = subprocess.run([sys.executable, "-c", read, str(home / "airflow.db")], capture_output=True, check=True)
    assert head.stdout == b"SQLite format 3\x00"
    (home / "dags").mkdir(exist_ok=True)
    (home / "dags" / "airflow.db").write_bytes(b"x")  # a file of that name elsewhere is not the live database
    (home / "dags" / "airflow.db").unlink()


#: This process has a WAL database open (as Airflow 3.3 opens its SQLite DB); with argv[1] == "read" it opens
#: and closes the files as plain files (what the secrets test did); then a child opens the database, writes and
#: closes; then this process writes again.
LOCK_LOSS = r"""
import os, sqlite3, subprocess, sys, tempfile
from pathlib import Path

folder = Path(tempfile.mkdtemp()); db = folder / "airflow.db"
conn = sqlite3.connect(db, isolation_level=None); conn.execute("PRAGMA journal_mode=WAL")
conn.execute("create table t (v blob)")
for _ in range(2000): conn.execute("insert into t values (randomblob(200))")
if sys.argv[1] == "read":
    for path in folder.glob("airflow.db*"): path.read_bytes()
child = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); " \
        "[c.execute('insert into t values (randomblob(200))') for _ in range(300)]; c.close()"
subprocess.run([sys.executable, "-c", child, str(db)], check=True)
print("wal kept" if (folder / "airflow.db-wal").exists() else "wal deleted")
try:
    for _ in range(2000): conn.execute("insert into t values (randomblob(200))")
    other = sqlite3.connect(db, isolation_level=None)  # what the next connection sees of 4300 rows
    print(other.execute("select count(*) from t").fetchone()[0], other.execute("pragma integrity_check").fetchone()[0])
except sqlite3.DatabaseError as exc:
    print("error:", exc)
"""


def test_why_closing_a_descriptor_of_a_live_sqlite_file_corrupts_it() -> None:
    """The root cause, shown with sqlite3 alone: after this process opened and closed the files, the child took
    itself for the database's only user and deleted the WAL on closing, under this process's connection."""

    def run(mode: str) -> list[str]:
        return subprocess.run(
            [sys.executable, "-c", LOCK_LOSS, mode], capture_output=True, text=True, check=True
        ).stdout.split("\n")[:2]

    assert run("keep") == ["wal kept", "4300 ok"]
    kept, after = run("read")
    assert kept == "wal deleted" and after != "4300 ok", (kept, after)  # an error, or rows lost
