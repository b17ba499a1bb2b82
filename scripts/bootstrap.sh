#!/usr/bin/env bash
# Idempotent environment set-up for mesoinv (Debian 12, Python >= 3.11). See docs/install.md.
#
#   scripts/bootstrap.sh [--with-slurm] [--rebuild-kwant]
#
# (a) Debian packages (only when missing; needs root, else prints the apt command and exits 1)
# (b) .venv in the repository root
# (c) Kwant 1.5.0 wheel: reused from $MESOINV_CACHE/wheels, else built from the sdist with
#     MUMPS and cached (~2 min on 2 cores)
# (d) pip install -e ".[test]" (skipped when the stamp in .venv shows nothing changed)
# (e) import check: kwant.linalg.mumps, versions of the main packages
#
# Environment: MESOINV_CACHE (default ~/.cache/mesoinv), MESOINV_WITH_SLURM=1 (= --with-slurm),
# MESOINV_REBUILD_KWANT=1 (= --rebuild-kwant), MESOINV_PYTHON (interpreter for a new .venv,
# default python3). OMP_/OPENBLAS_ settings are left as they are.
set -euo pipefail

KWANT_VERSION=1.5.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MESOINV_CACHE:-$HOME/.cache/mesoinv}"
WHEELS="$CACHE/wheels"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.mesoinv-bootstrap.stamp"
WITH_SLURM="${MESOINV_WITH_SLURM:-0}"
REBUILD_KWANT="${MESOINV_REBUILD_KWANT:-0}"
BASE_PYTHON="${MESOINV_PYTHON:-python3}"

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --with-slurm) WITH_SLURM=1 ;;
        --rebuild-kwant) REBUILD_KWANT=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

mkdir -p "$WHEELS"
cd "$ROOT"

# One bootstrap at a time per cache (run-demo and run-tests may start together).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/bootstrap.lock"
    if ! flock -n 9; then
        log "waiting for another bootstrap (lock $CACHE/bootstrap.lock)"
        flock 9
    fi
fi

# ---------------------------------------------------------------------------------------------
# (a) Debian packages
# ---------------------------------------------------------------------------------------------
# libopenblas0-serial: MUMPS links the system libblas.so.3; the reference BLAS there makes the
# factorisation 2× slower (docs/benchmarks.md). Its higher alternatives priority selects it.
pkgs=(build-essential gfortran pkg-config libmumps-seq-dev libopenblas0-serial)
if [ "$WITH_SLURM" = 1 ]; then
    pkgs+=(slurmctld slurmd slurm-client munge)
fi

py_is_debian=0
if command -v "$BASE_PYTHON" >/dev/null 2>&1 \
    && [ "$("$BASE_PYTHON" -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" = /usr ]; then
    py_is_debian=1
fi
if [ "$py_is_debian" = 1 ] && [ ! -x "$PY" ]; then
    # Debian's own python3 needs these for `python3 -m venv` and for compiling Kwant.
    pkgs+=(python3-venv python3-dev)
fi

if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${pkgs[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt: all ${#pkgs[@]} Debian packages present"
    elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "apt: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    else
        printf '[bootstrap] ERROR: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf '[bootstrap] install them with:\n    sudo apt-get install -y %s\n' "${missing[*]}" >&2
        printf '[bootstrap] then rerun %s\n' "$0" >&2
        exit 1
    fi
else
    log "apt: no dpkg on this system; make sure a C compiler, gfortran and sequential MUMPS are installed"
fi

# ---------------------------------------------------------------------------------------------
# (b) virtual environment
# ---------------------------------------------------------------------------------------------
if [ -e "$VENV" ] && ! "$PY" -c 'pass' >/dev/null 2>&1; then
    die "$VENV exists but $PY does not run (moved repository or removed interpreter?): rm -rf '$VENV' and rerun"
fi
if [ ! -e "$VENV" ]; then
    command -v "$BASE_PYTHON" >/dev/null 2>&1 || die "$BASE_PYTHON not found (set MESOINV_PYTHON)"
    "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$BASE_PYTHON is $("$BASE_PYTHON" -V 2>&1); Python >= 3.11 is required (set MESOINV_PYTHON)"
    log "venv: creating $VENV with $("$BASE_PYTHON" -V 2>&1)"
    "$BASE_PYTHON" -m venv "$VENV"
    "$PY" -m pip install -qq --upgrade pip
else
    log "venv: $VENV exists ($("$PY" -V 2>&1))"
fi

# ---------------------------------------------------------------------------------------------
# (c) Kwant wheel (cached; built from the sdist with --cython so the C matches numpy 2)
# ---------------------------------------------------------------------------------------------
tag="$("$PY" -c 'import sys, sysconfig
v = "cp%d%d" % sys.version_info[:2]
print(v + "-" + v + "-" + sysconfig.get_platform().replace("-", "_").replace(".", "_"))')"
KWANT_WHEEL="$WHEELS/kwant-$KWANT_VERSION-$tag.whl"
SDIST="$CACHE/kwant-$KWANT_VERSION.tar.gz"

# Build-time pins: the same numpy/scipy/tinyarray as pyproject.toml.
pin() {
    "$PY" - "$1" <<'EOF'
import sys, tomllib
name = sys.argv[1].lower()
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(d for d in deps if d.lower().split("==")[0] == name))
EOF
}

wheel_has_mumps() {
    "$PY" - "$1" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith("kwant/linalg/_mumps") and n.endswith(".so") for n in names) else 1)
EOF
}

build_kwant() {
    local tmp bpy logf t0 built
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/mesoinv-kwant.XXXXXX")"
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    logf="$CACHE/kwant-build.log"
    t0=$SECONDS
    if [ ! -f "$SDIST" ]; then
        log "kwant: downloading sdist kwant==$KWANT_VERSION"
        "$PY" -m pip download -qq --no-deps --no-binary :all: "kwant==$KWANT_VERSION" -d "$tmp/dl"
        mv "$tmp/dl/kwant-$KWANT_VERSION.tar.gz" "$SDIST"
    fi
    log "kwant: building wheel from $SDIST (about 2 min on 2 cores; log: $logf)"
    "$BASE_PYTHON_FOR_BUILD" -m venv "$tmp/buildenv"
    bpy="$tmp/buildenv/bin/python"
    "$bpy" -m pip install -qq --upgrade pip
    "$bpy" -m pip install -qq "$(pin numpy)" "$(pin scipy)" "$(pin tinyarray)" \
        "cython==3.1.*" setuptools wheel
    tar -xzf "$SDIST" -C "$tmp"
    if ! (cd "$tmp/kwant-$KWANT_VERSION" && "$bpy" setup.py --cython bdist_wheel -d "$tmp/wheel") \
        >"$logf" 2>&1; then
        tail -n 30 "$logf" >&2
        die "Kwant build failed; full log in $logf"
    fi
    local whls=("$tmp"/wheel/kwant-"$KWANT_VERSION"-*.whl)
    built="${whls[0]}"
    [ -f "$built" ] || die "Kwant build produced no wheel; see $logf"
    if ! wheel_has_mumps "$built"; then
        die "the Kwant build did not pick up MUMPS (no kwant/linalg/_mumps*.so; see $logf).
    Install libmumps-seq-dev (apt-get install -y libmumps-seq-dev) and rerun. Not caching this wheel."
    fi
    mv "$built" "$KWANT_WHEEL.part"
    mv "$KWANT_WHEEL.part" "$KWANT_WHEEL"
    rm -rf "$tmp"
    trap - EXIT
    log "kwant: built and cached $KWANT_WHEEL in $((SECONDS - t0)) s"
}

# The build venv uses the same interpreter as .venv (the wheel's tag must match).
BASE_PYTHON_FOR_BUILD="$("$PY" -c 'import sys; print(sys._base_executable)')"

if [ "$REBUILD_KWANT" = 1 ] && [ -f "$KWANT_WHEEL" ]; then
    log "kwant: --rebuild-kwant: removing cached $KWANT_WHEEL"
    rm -f "$KWANT_WHEEL"
fi
if [ -f "$KWANT_WHEEL" ]; then
    log "kwant: using cached wheel $KWANT_WHEEL"
else
    build_kwant
fi

# ---------------------------------------------------------------------------------------------
# (d) project + pinned dependencies (editable)
# ---------------------------------------------------------------------------------------------
stamp_value="$(
    {
        sha256sum pyproject.toml | cut -d' ' -f1
        printf '%s ' "$(basename "$KWANT_WHEEL")"
        sha256sum "$KWANT_WHEEL" | cut -d' ' -f1
        printf '%s\n' "$ROOT"
    } | sha256sum | cut -d' ' -f1
)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp_value" ]; then
    log "pip: up to date (pyproject.toml and Kwant wheel unchanged; stamp $STAMP)"
else
    log "pip: installing Kwant wheel and -e .[test] (pinned in pyproject.toml)"
    rm -f "$STAMP"
    # Reinstall Kwant from the cached wheel in case a different build of 1.5.0 is installed.
    "$PY" -m pip install -qq --force-reinstall --no-deps "$KWANT_WHEEL"
    "$PY" -m pip install -qq "$KWANT_WHEEL" -e ".[test]"
    stamp_pending=1
fi

# ---------------------------------------------------------------------------------------------
# (e) final check
# ---------------------------------------------------------------------------------------------
if ! "$PY" -c 'import kwant.linalg.mumps' >/dev/null 2>&1; then
    "$PY" -c 'import kwant.linalg.mumps' 2>&1 | tail -n 3 >&2 || true
    die "Kwant has no working MUMPS (import kwant.linalg.mumps failed): Kwant would fall back to
    SuperLU and be very slow. Fix:
        apt-get install -y libmumps-seq-dev
        rm -f '$KWANT_WHEEL'      # or: $0 --rebuild-kwant
        $0
    (If the cached wheel itself is sound, rm '$STAMP' and rerun: that reinstalls it.)"
fi
versions="$("$PY" -W ignore - <<'EOF'
import kwant, kwant.linalg.mumps, numpy, torch, netCDF4, snakemake
import mpi4py
from mpi4py import MPI
import kwant.solvers.default as d
assert "mumps" in d.smodule.__name__, d.smodule.__name__
print(f"kwant {kwant.__version__} (MUMPS) | numpy {numpy.__version__} | torch {torch.__version__}"
      f" | mpi4py {mpi4py.__version__} ({MPI.Get_library_version().split()[0]})"
      f" | netCDF4 {netCDF4.__version__} | snakemake {snakemake.__version__}")
EOF
)" || die "import check failed (see the traceback above)"
if [ "${stamp_pending:-0}" = 1 ]; then
    printf '%s\n' "$stamp_value" >"$STAMP"
fi
log "ok: $versions"
