# Shared by tools/setup.sh and tools/test.sh (source it, do not run it): makes sure the Debian
# packages the build needs are installed, then configures and builds the `build/` folder. Checking is
# one dpkg-query call, so a machine that has everything pays nothing; a missing package is installed
# when we run as root, otherwise the exact command is printed and the caller stops.

FPI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FPI_BUILD_DIR="$FPI_ROOT/build"
FPI_JOBS="$(nproc 2>/dev/null || echo 2)"

# libgmock-dev is listed because GoogleTest's matchers are part of what a test may include. The trainer
# reads JSON (nlohmann-json3-dev), checks configs against models/schema.json (libvalijson-dev), parses
# its command line with CLI11 (libcli11-dev) and reads and writes PNG images (libpng-dev). `fpi bench paper`
# draws its plots with gnuplot (gnuplot-nox: no X11), run as a child process. Data-parallel training
# (`mpirun -np N fpi train`) and its tests need Open MPI's C library and launcher.
FPI_DEBIAN_PACKAGES=(cmake ninja-build g++ libopenblas-dev libgtest-dev libgmock-dev nlohmann-json3-dev
                     libvalijson-dev libcli11-dev libpng-dev gnuplot-nox libopenmpi-dev openmpi-bin)

fpi_missing_packages() {
  local installed package
  installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' "${FPI_DEBIAN_PACKAGES[@]}" 2>/dev/null) "
  for package in "${FPI_DEBIAN_PACKAGES[@]}"; do
    [[ "$installed" == *" $package:installed "* ]] || echo "$package"
  done
}

fpi_ensure_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "fpi: not a Debian-based system; make sure these (or your system's equivalents) are installed:" \
      "${FPI_DEBIAN_PACKAGES[*]}" >&2
    return 0
  fi
  local missing
  missing="$(fpi_missing_packages | tr '\n' ' ')"
  missing="${missing% }"
  [[ -z "$missing" ]] && return 0
  local install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing"
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "fpi: missing Debian packages: $missing" >&2
    echo "fpi: install them as root, then run this script again:" >&2
    echo "  sudo sh -c '$install'" >&2
    return 1
  fi
  echo "fpi: installing $missing"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

# The defaults below apply when build/ is configured for the first time; after that the cache keeps
# whatever the user chose (cmake -B build -DFPI_CUDA=OFF, ...). Extra arguments are passed to CMake.
fpi_configure_and_build() {
  local args=()
  if [[ ! -f "$FPI_BUILD_DIR/CMakeCache.txt" ]]; then
    args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DFPI_CUDA=AUTO)
  fi
  cmake -S "$FPI_ROOT" -B "$FPI_BUILD_DIR" "${args[@]}" "$@"
  cmake --build "$FPI_BUILD_DIR" --parallel "$FPI_JOBS"
}
