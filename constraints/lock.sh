#!/usr/bin/env bash
# Pin the test environment of one Airflow version: constraints/airflow-<version>.txt.
#
#   constraints/lock.sh 3.0.6        (or: make lock AIRFLOW_VERSION=3.0.6)
#
# 1. Airflow and its own dependencies are resolved as of `exclude_newer` in releases.tsv (a week after the
#    release): what the release's official constraints file pinned. Resolved against today's packages,
#    some releases break themselves (3.2.x: pydantic/fastapi).
# 2. Providers are left out of that set: the providers this package needs (common-compat, amazon, samba,
#    openlineage) are today's releases, which support Airflow >= 2.11, as a user installing today gets them.
# 3. This package with its test extra is installed on top in a scratch venv, and the whole set frozen.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: constraints/lock.sh AIRFLOW_VERSION}
line=$(awk -v v="$version" '$1 == v' constraints/releases.tsv)
[ -n "$line" ] || { echo "Airflow $version is not in constraints/releases.tsv" >&2; exit 1; }
exclude_newer=$(echo "$line" | awk '{print $3}')
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q uv
uv="$work/venv/bin/uv"
base=/dev/null
if [ "$exclude_newer" != "-" ]; then
  echo "apache-airflow==$version" > "$work/airflow.in"
  "$uv" pip compile -q --python "$work/venv/bin/python" --exclude-newer "$exclude_newer" "$work/airflow.in" \
    | grep -v -e '^apache-airflow-providers-' > "$work/base.txt"
  base="$work/base.txt"
fi
"$uv" pip install -q --python "$work/venv/bin/python" -e '.[test]' "apache-airflow==$version" -c "$base"
"$uv" pip freeze --python "$work/venv/bin/python" | grep -v -e '^-e ' -e '^airflow-provider-cloudmax' \
  > "constraints/airflow-$version.txt"
echo "constraints/airflow-$version.txt: $(wc -l < "constraints/airflow-$version.txt") packages"
