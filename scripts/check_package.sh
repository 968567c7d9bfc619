#!/usr/bin/env bash
# Builds the sdist and the wheel, installs the wheel (not this checkout) with the [s3] extra into a fresh
# virtualenv, pinned by constraints.txt, and checks what a user of the released package sees: Airflow
# registers the provider, the plugin and the `airflow resume` commands, the UI templates are packaged,
# and the package description renders on a package index (twine check).
# Needs .venv (scripts/setup.sh) for build and twine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "check_package: FAILED: $*" >&2
  exit 1
}
ok() { echo "check_package: ok (${SECONDS}s): $*"; }
# Runs a command with its output in $work/out (stderr in $work/err); on failure shows both and fails
# with the message.
run() {
  local what=$1
  shift
  if ! "$@" >"$work/out" 2>"$work/err"; then
    cat "$work/out" "$work/err" >&2
    fail "$what"
  fi
}

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' airflow_resume_provider/__init__.py)
[ -n "$version" ] || fail "no __version__ = \"...\" line in airflow_resume_provider/__init__.py"

# Built from a copy of the files git knows or would add (as in a fresh clone, plus new files): no
# leftovers such as an old *.egg-info/SOURCES.txt, which setuptools would put into the sdist, and
# nothing written into the checkout. The wheel is built from the sdist, so a file missing from the
# sdist is missing from the wheel too.
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "$root is not a git checkout"
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' path; do if [ -e "$path" ]; then printf '%s\0' "$path"; fi; done |
  tar --null -T - -cf - | tar -xf - -C "$work/src"
run "python -m build could not build the sdist and the wheel" \
  .venv/bin/python -m build --outdir "$work/dist" "$work/src"
sdist=$work/dist/airflow_resume_provider-$version.tar.gz
wheel=$work/dist/airflow_resume_provider-$version-py3-none-any.whl
[ -f "$sdist" ] && [ -f "$wheel" ] ||
  fail "build made $(cd "$work/dist" && echo *), not the sdist and wheel of version $version"
ok "built $(basename "$sdist") and $(basename "$wheel")"

run "the sdist or the wheel lacks a file" .venv/bin/python - "$sdist" "$wheel" <<'PY'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
names = tarfile.open(sdist).getnames()
in_sdist = {name.partition("/")[2] for name in names}
in_wheel = zipfile.ZipFile(wheel).namelist()
missing = [f"sdist: {n}" for n in ("README.md", "LICENSE", "CHANGELOG.md", "docs/configuration.md") if n not in in_sdist]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel):
    missing.append("wheel: LICENSE")
sys.exit(f"missing: {', '.join(missing)}" if missing else 0)
PY
ok "the sdist carries README.md, LICENSE, CHANGELOG.md and docs/configuration.md, the wheel its LICENSE"

run "twine check: the package metadata or its description (README.md) does not render" \
  .venv/bin/twine check --strict "$sdist" "$wheel"
ok "twine check --strict passed for the sdist and the wheel"

# A fresh virtualenv from .venv's base interpreter, run from outside the checkout so that nothing of the
# checkout is importable, and with no Airflow settings inherited from the caller.
base_python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
run "could not create a fresh virtualenv" "$base_python" -m venv "$work/venv"
# The same pip as .venv (scripts/setup.sh). No byte-compiling: only a few commands run here.
run "could not install pip 26.3 into the fresh virtualenv" \
  "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip==26.3"
run "could not install the wheel with the [s3] extra, pinned by constraints.txt" \
  "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
  -c "$root/constraints.txt" "$wheel[s3]"
ok "installed the wheel with the [s3] extra into a fresh virtualenv"

cd "$work"
unset PYTHONPATH
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(AIRFLOW[A-Z0-9_]*\)=.*/\1/p')
export AIRFLOW_HOME=$work/airflow_home
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$work/airflow_home/airflow.db
export PATH=$work/venv/bin:$PATH
py=$work/venv/bin/python

run "could not import the installed package" "$py" -c '
import airflow_resume_provider as p
from importlib.metadata import version
print(p.__file__, p.__version__, version("airflow-resume-provider"), sep="\n")'
{ read -r file && read -r module_version && read -r dist_version; } <"$work/out"
case "$file" in
"$work/venv/"*) ;;
*) fail "airflow_resume_provider is imported from $file, not from the fresh virtualenv's wheel install" ;;
esac
[ "$module_version" = "$version" ] && [ "$dist_version" = "$version" ] ||
  fail "installed version: __version__ $module_version, distribution $dist_version; expected $version"
ok "airflow_resume_provider $version is imported from the wheel's install ($file)"

templates=$(cd "$root/airflow_resume_provider/ui/templates" && echo *.html)
run "UI templates are missing from the installed package" "$py" -c '
import sys
from importlib.resources import files
folder = files("airflow_resume_provider.ui") / "templates"
missing = [name for name in sys.argv[1:] if not (folder / name).is_file()]
if missing:
    sys.exit(f"missing from the installed package: {missing} (in {folder})")
assert "<" in (folder / "resume.html").read_text(encoding="utf-8")
' $templates
ok "UI templates inside the installed package: $templates"

run "airflow providers list failed" airflow providers list -o json
"$py" - "$work/out" "$version" <<'EOF' || fail "airflow providers list does not show airflow-resume-provider $version"
import json, sys
providers = json.load(open(sys.argv[1]))
found = [p["version"] for p in providers if p["package_name"] == "airflow-resume-provider"]
if found != [sys.argv[2]]:
    sys.exit(f"airflow-resume-provider versions listed: {found}; all: {[p['package_name'] for p in providers]}")
EOF
ok "airflow providers list shows airflow-resume-provider $version"

run "airflow plugins failed" airflow plugins -o json
"$py" - "$work/out" <<'EOF' || fail "airflow plugins does not list the resume plugin"
import json, sys
plugins = json.load(open(sys.argv[1]))
if not any(p["name"] == "resume" for p in plugins):
    sys.exit(f"plugins listed: {[p['name'] for p in plugins]}")
EOF
ok "airflow plugins lists the resume plugin"

run "airflow resume --help failed: the provider's CLI commands are not registered" airflow resume --help
missing=""
for command in status run check cleanup; do
  grep -Eq "^ +$command( |$)" "$work/out" || missing="$missing $command"
done
[ -z "$missing" ] || { cat "$work/out" >&2; fail "airflow resume --help does not list:$missing"; }
ok "airflow resume --help lists status, run, check and cleanup"

echo "check_package: all checks passed for airflow-resume-provider $version"
