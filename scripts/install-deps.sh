#!/usr/bin/env bash
# The Debian packages iprotod needs, in one place. Installs what is missing when
# run as root; otherwise prints the exact apt-get line and fails. Warns when an
# installed version differs from the one the project is built and tested with.
#
#   scripts/install-deps.sh build   libraries the build links against
#   scripts/install-deps.sh test    build + tools the tests drive
#   scripts/install-deps.sh bench   build + what make bench compares against and plots with
set -euo pipefail

# package=version tested (Debian 12 "bookworm"); a version of "-" is not pinned.
build_packages=(
    "libev-dev=1:4.33-1"
    "libmsgpuck-dev=1.0.3-1.1+b1"
    "libedit-dev=3.1-20221030-2"   # line editing in iproto repl
    "libsqlite3-dev=3.40.1-2+deb12u2"   # the KV replicas' store (KVStore, through GRDB)
    "libisal-dev=2.30.0-5"   # CRC-32 of every stored record (Durability), Reed-Solomon parity (ErasureCoding)
)
test_packages=(
    "netcat-openbsd=-"   # fixtures are fed with nc -N
    "xxd=-"              # fixture mismatches are shown as hex
    "python3=-"          # the restart test
    "prometheus=-"       # promtool checks the metrics text and prometheus.yml
    "systemd=-"          # systemd-analyze verifies the units
    "jq=-"               # deploy check reads the Grafana dashboard
    "curl=-"             # deploy check scrapes /metrics
    "tmux=-"             # drives iproto repl through a terminal in its test
    "gcc=-"              # compiles the power-cut test's LD_PRELOAD shim
    "libc6-dev=-"        # its headers
    "etcd-server=3.4.23-4+b4"   # the KV cluster's coordinator, started by its tests on loopback
    "etcd-client=3.4.23-4+b4"   # etcdctl, to look at it
    "chromium=-"                # the file store's status page, rendered headless in its test
    "fonts-dejavu-core=-"       # a font for it to draw text with (chromium only recommends one)
    "postgresql=-"              # the file gateway's shared metadata, started by its test on loopback
)

bench_packages=(
    "redis-server=5:7.0.15-1~deb12u10"   # the baseline server
    "redis-tools=5:7.0.15-1~deb12u10"    # redis-benchmark
    "gnuplot-nox=-"                      # docs/benchmarks.png
    "python3=-"                          # holds the idle connections
    "wrk=-"                              # drives etcd's JSON gateway (bench/kv_bench.sh)
    "etcd-server=3.4.23-4+b4"            # the KV cluster's baseline and coordinator
    "nginx=-"                            # the file store's WebDAV baseline (bench/files_bench.sh)
    "curl=-"                             # its load generator
)

case "${1:-test}" in
    build) wanted=("${build_packages[@]}") ;;
    test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
    bench) wanted=("${build_packages[@]}" "${bench_packages[@]}") ;;
    *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }

missing=()
for entry in "${wanted[@]}"; do
    package=${entry%%=*}
    [[ -n $(installed_version "$package") ]] || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
for entry in "${wanted[@]}"; do
    package=${entry%%=*} pinned=${entry#*=}
    actual=$(installed_version "$package")
    if [[ $pinned != - && $actual != "$pinned" ]]; then
        echo "warning: $package $actual is installed; iprotod is built and tested with $pinned" >&2
    fi
done

# Python packages the tests import, for the python3 on PATH (pinned; PyPI).
if [[ ${1:-test} == test ]]; then
    python_packages=("msgpack==1.2.4")   # the KV cluster tests' client
    for entry in "${python_packages[@]}"; do
        module=${entry%%==*}
        if ! python3 -c "import $module" 2>/dev/null; then
            echo "installing Python package $entry"
            python3 -m pip install -q "$entry"
        fi
    done
fi
