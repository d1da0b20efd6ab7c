#!/usr/bin/env bash
# Builds, once per machine, a Python environment where h5forge flows can run on MPI ranks:
# mpi4py and h5py compiled against Debian's parallel HDF5 (MPICH build, HDF5_MPI=ON).
# PyPI's h5py wheels carry a serial HDF5, so the parallel one has to be compiled here
# (about 5 minutes on 2 cores). The environment lives outside the checkout, so a second run
# on the same machine (another clone, another CI run) reuses it; this checkout is then
# installed into it in editable mode, which takes seconds.
#
#   scripts/mpi-env.sh            # prints the environment's python on its last line
#   H5FORGE_MPI_ENV=/some/dir scripts/mpi-env.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
env_dir=${H5FORGE_MPI_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/h5forge/mpi-env-py$pyver}
hdf5_dir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/hdf5/mpich
# The h5py built from source: the version the serial environment gets from PyPI.
h5py_version=${H5PY_VERSION:-3.16.0}
mpi4py_version=${MPI4PY_VERSION:-4.1.2}

log() { echo "mpi-env: $*" >&2; }

# 1. Debian's MPICH and parallel HDF5 (needs root or sudo once per machine), and HDF5's own
#    command-line tools: tests/io reads threaded chunks back with h5dump, a reader that is not h5py.
if ! dpkg -s libhdf5-mpich-dev mpich hdf5-tools >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    log "installing Debian's mpich, libhdf5-mpich-dev and hdf5-tools"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        mpich libhdf5-mpich-dev pkg-config hdf5-tools >&2
fi

# 2. mpi4py and h5py compiled against them, into an environment of their own.
stamp="$env_dir/.h5forge-built-h5py-$h5py_version-mpi4py-$mpi4py_version"
if [ ! -f "$stamp" ]; then
    log "building mpi4py $mpi4py_version and h5py $h5py_version against $hdf5_dir into $env_dir"
    rm -rf "$env_dir"
    "$python" -m venv "$env_dir"
    "$env_dir/bin/python" -m pip install -q --upgrade pip >&2
    # -O1 without debug info: mpi4py's one big C file takes over 15 minutes at pip's -O3 -g
    # here, and about 3 at -O1; the code that runs often (HDF5, MPI) is compiled already.
    CFLAGS="-O1 -g0" CC=mpicc MPICC=mpicc HDF5_MPI=ON HDF5_DIR="$hdf5_dir" \
        "$env_dir/bin/python" -m pip install -q --no-binary=h5py,mpi4py \
        "mpi4py==$mpi4py_version" "h5py==$h5py_version" >&2
    "$env_dir/bin/python" -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)' || {
        log "h5py in $env_dir was built without MPI"; exit 1; }
    touch "$stamp"
fi

# 3. This checkout, editable, with what the MPI tests need; the compiled h5py and mpi4py stay.
constraints="$env_dir/constraints.txt"
printf 'h5py==%s\nmpi4py==%s\n' "$h5py_version" "$mpi4py_version" > "$constraints"
installed="$env_dir/.h5forge-checkout"
want="$repo $(sha1sum "$repo/pyproject.toml" | cut -c1-40)"
if [ "$(cat "$installed" 2>/dev/null)" != "$want" ]; then
    log "installing $repo into $env_dir"
    "$env_dir/bin/python" -m pip install -q -c "$constraints" -e "$repo[mpi]" pytest >&2
    echo "$want" > "$installed"
fi
echo "$env_dir/bin/python"
