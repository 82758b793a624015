"""The built distributions: `python -m build` makes a wheel and an sdist that `twine check` accepts, and the
wheel carries what a deployment and the demo need (py.typed, the emulator, the example DAGs, the provider
entry point) and nothing of the test suite."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cloudmax_provider import __version__, get_provider_info

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--installer", "uv", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_twine_accepts_both(dists: dict[str, Path]) -> None:
    twine = Path(sys.executable).parent / "twine"
    done = subprocess.run([str(twine), "check", "--strict", *map(str, dists.values())], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert dists["wheel"].name == f"airflow_provider_cloudmax-{__version__}-py3-none-any.whl"


def test_wheel_contents(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as zf:
        names = set(zf.namelist())
        info = f"airflow_provider_cloudmax-{__version__}.dist-info"
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
        metadata = zf.read(f"{info}/METADATA").decode()
    expected = {
        "cloudmax_provider/py.typed",
        "cloudmax_provider/testing/emulator/__init__.py",
        "cloudmax_provider/testing/emulator/__main__.py",
        "cloudmax_provider/testing/emulator/cli.py",
        "cloudmax_provider/testing/rows.py",
        "cloudmax_provider/testing/demo.py",
        "cloudmax_provider/testing/pytest_plugin.py",
        "cloudmax_provider/hooks/cloudmax.py",
        "cloudmax_provider/operators/report.py",
        "cloudmax_provider/sensors/download_link.py",
        "cloudmax_provider/triggers/download_link.py",
    }
    assert expected <= names, expected - names
    # every module of the checkout is in the wheel, and every example DAG (the demo runs them)
    package = {str(p.relative_to(ROOT)) for p in (ROOT / "cloudmax_provider").rglob("*.py")}
    assert package <= names, package - names
    examples = {f"cloudmax_provider/example_dags/{p.name}" for p in (ROOT / "example_dags").glob("*.py")}
    assert examples and examples <= names, examples - names
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "__pycache__" in n]
    assert "[apache_airflow_provider]\nprovider_info = cloudmax_provider:get_provider_info" in entry_points
    assert "[pytest11]" not in entry_points  # the emulator fixtures are opt-in
    assert f"Version: {__version__}" in metadata
    assert get_provider_info()["versions"][0] == __version__


def test_no_pytest_plugin_is_registered(request: pytest.FixtureRequest) -> None:
    """The emulator fixtures load only where a suite asks for them: neither the installed distribution nor
    pyproject.toml declares a ``pytest11`` entry point (which pytest would load in every run of every
    deployment that installs the provider). This suite opts in (tests/conftest.py), as a user would."""
    import tomllib
    from importlib.metadata import distribution

    dist = distribution("airflow-provider-cloudmax")
    groups = {ep.group for ep in dist.entry_points}
    assert "apache_airflow_provider" in groups and "pytest11" not in groups, groups
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert set(project["entry-points"]) == {"apache_airflow_provider"}
    assert request.config.pluginmanager.has_plugin("cloudmax_provider.testing.pytest_plugin")


def test_sdist_rebuilds_the_same_package(dists: dict[str, Path]) -> None:
    import tarfile

    with tarfile.open(dists["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    pins = {f"constraints/airflow-{p.name[8:-4]}.txt" for p in (ROOT / "constraints").glob("airflow-*.txt")}
    assert {"pyproject.toml", "setup.py", "README.md", "constraints/releases.tsv", "cloudmax_provider/py.typed"} <= (
        names
    )
    assert pins and pins <= names
    assert {f"example_dags/{p.name}" for p in (ROOT / "example_dags").glob("*.py")} <= names
