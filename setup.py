"""Package list only (everything else is in pyproject.toml).

``example_dags/`` ships in the wheel as ``cloudmax_provider.example_dags``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["cloudmax_provider", "cloudmax_provider.*"]), "cloudmax_provider.example_dags"],
    package_dir={"cloudmax_provider.example_dags": "example_dags"},
)
