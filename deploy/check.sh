#!/usr/bin/env bash
# Checks the deployment files in deploy/ and the metrics a real iprotod and a
# real iproto-kvd node export.
#
#   deploy/check.sh PATH_TO_IPROTOD [PATH_TO_IPROTO_KVD]
#
# Without PATH_TO_IPROTO_KVD the checks that need the node binary (f to h)
# print "skip"; the others still run.
#
# Debian packages it needs (scripts/install-deps.sh test installs them):
#   systemd          systemd-analyze
#   prometheus       promtool
#   jq               reads the Grafana dashboards
#   curl             scrapes /metrics
#   netcat-openbsd   nc -N, sends iproto requests
#   etcd-server      etcd, the key-value node's coordinator (with PATH_TO_IPROTO_KVD)
#   python3          sends the key-value requests, with the msgpack module
#                    (scripts/install-deps.sh installs msgpack with pip)
#   apt-get install -y systemd prometheus jq curl netcat-openbsd etcd-server python3
#
# What it checks (one "ok"/"FAIL"/"skip" line each, then "N passed, M failed"):
#   a) systemd-analyze verify on systemd/iprotod.socket and iprotod.service,
#      copied to a temp dir with ExecStart= pointing at PATH_TO_IPROTOD
#      (verify fails on an ExecStart binary that does not exist). Every line it
#      prints fails the check unless it is one of the environment-only lines
#      below; a deliberately broken copy must be caught (so the filter cannot
#      hide everything); `systemd-analyze security --offline` must rate the
#      service's exposure at most 2.0; the IPROTOD_DATA_DIR the unit documents
#      for durable storage is its StateDirectory= (the only writable place).
#   b) promtool check config prometheus/prometheus.yml.
#   c) starts PATH_TO_IPROTOD --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir TMP,
#      reads both addresses from its first two stdout lines (bounded wait),
#      sends iproto requests with nc and checks their return codes, scrapes
#      GET /metrics with curl, runs promtool check metrics on the scrape and
#      checks that iprotod_requests_total counted the requests.
#   d) every metric used by the dashboard's PromQL (all targets[].expr and the
#      instance variable's label_values) is a family of the scrape ("# TYPE"
#      lines); _bucket/_sum/_count are mapped to their histogram family.
#   e) grafana/iprotod.json is valid JSON with the template variables, units
#      and a gridPos on every panel (no overlaps, 24 columns), and each
#      expression parses as PromQL (promtool check rules, Grafana's $__
#      variables substituted).
#   The key-value node (iproto-kvd, docs/cluster.md):
#   f) systemd/iproto-kvd@.service, the template, through its instance
#      iproto-kvd@1.service: systemd-analyze verify with ExecStart= pointing
#      at PATH_TO_IPROTO_KVD and the same filter as a), a broken copy caught,
#      security exposure at most 2.0; --data-dir is ${STATE_DIRECTORY} of
#      StateDirectory=iproto-kvd/%i, EnvironmentFile=/etc/iproto-kvd/%i.env,
#      Restart=on-failure with RestartPreventExitStatus=64 65, After= and
#      Wants=network-online.target, and every KV_* variable ExecStart= uses is
#      documented in the header. Also (b) prometheus.yml has a job iproto-kvd
#      whose target is the KV_METRICS_LISTEN the unit documents.
#   g) starts etcd (one member, free loopback ports, data in TMP) and
#      PATH_TO_IPROTO_KVD --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0
#      --etcd URL --replication-factor 1 --data-dir TMP/kv1, reads both
#      addresses from its first two stdout lines, sends KV_HEARTBEAT until
#      the reply's leader is its own address (bounded), then KV_SET of a new
#      UUID4 key and KV_GET of it (python3 with msgpack), scrapes /metrics,
#      runs promtool check metrics, checks iproto_kv_leader is 1 and
#      iproto_kv_requests_total{function} counted the requests sent. It checks
#      the exit statuses the unit's RestartPreventExitStatus= relies on (64
#      for a --join with a different --replication-factor, 65 for a
#      --data-dir that is a file) and that SIGTERM makes the node exit 0.
#      etcd and the node are stopped on every exit, interrupted or not.
#   h) every metric of grafana/iproto-kvd.json is a family of that scrape.
#   i) grafana/iproto-kvd.json passes the layout and PromQL checks of e).
#   The file store (iproto-filegw and iproto-volumed, docs/file-store.md), with
#   PATH_TO_IPROTO_FILEGW and PATH_TO_IPROTO_VOLUMED:
#   j) systemd/iproto-filegw.service and iproto-volumed@.service (through
#      iproto-volumed@1.service): systemd-analyze verify with ExecStart= pointing
#      at the binaries and the filter of a), a broken copy caught, security
#      exposure at most 2.0 each; the --data-dir of each is ${STATE_DIRECTORY};
#      prometheus.yml has jobs iproto-filegw and iproto-volumed scraping the
#      addresses the units document.
#   k) starts a gateway and a node that registers at it, each with its metrics,
#      stores and reads a file, scrapes both, runs promtool check metrics, and
#      checks that every metric of grafana/iproto-files.json is exported.
#   l) grafana/iproto-files.json passes the layout and PromQL checks of e).
#
# Output of systemd-analyze verify that is tolerated (printed as "note:"):
#   1. "<unit or unit file:line>: Failed to parse system call, ignoring: NAME"
#      for iprotod.service. SystemCallFilter=@system-service expands to
#      systemd's own syscall table, which can name syscalls the installed
#      libseccomp does not know (Debian 12: systemd 252.39 vs libseccomp
#      2.5.4 for riscv_hwprobe and uretprobe). systemd skips them; the filter
#      is still applied. It depends on the host's package versions, not on
#      the unit. Debian 12's systemd logs it at debug level only (seen here
#      with SYSTEMD_LOG_LEVEL=debug), below the info level this script pins;
#      it is tolerated for systemd builds that log it louder.
#   2. Lines about other units (a unit name or unit file that is not
#      iprotod.*). verify loads the whole dependency tree from the host's
#      unit directories (sockets.target, sysinit.target, network.target, ...)
#      and reports problems in those files, e.g. a host unit with an unknown
#      key or missing mount units in a container; they belong to the host.
#   On this machine (Debian 12 container, systemd 252, no systemd as PID 1)
#   verify prints nothing at all for these units at the default log level.
#   Lines that a container prints only at debug level ("Failed to read
#   $container of PID 1", "PR_SET_MM_ARG_START failed", "Cannot stat
#   .../transient") are not tolerated: the log level is pinned to info.
#   --man=no skips the check that man: Documentation= links resolve, which
#   depends on installed man pages (the units have no man: links anyway).
set -euo pipefail

usage() { echo "usage: $0 PATH_TO_IPROTOD [PATH_TO_IPROTO_KVD [PATH_TO_IPROTO_FILEGW PATH_TO_IPROTO_VOLUMED]]" >&2; exit 2; }
[[ $# -eq 1 || $# -eq 2 || $# -eq 4 ]] || usage
for binary in "$@"; do
    [[ -x $binary && -f $binary ]] || { echo "$0: $binary is not an executable file" >&2; exit 2; }
done
iprotod=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
kvd=""
if [[ $# -ge 2 ]]; then
    kvd=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
fi
filegw="" volumed=""
if [[ $# -eq 4 ]]; then
    filegw=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
    volumed=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
fi
deploy=$(cd "$(dirname "$0")" && pwd)

missing=()
for tool in systemd-analyze promtool jq curl nc timeout od; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "$0: missing ${missing[*]}; run: apt-get install -y systemd prometheus jq curl netcat-openbsd" >&2
    exit 2
fi
if [[ -n $kvd ]]; then
    command -v etcd >/dev/null || { echo "$0: missing etcd; run: apt-get install -y etcd-server" >&2; exit 2; }
    python3 -c 'import msgpack' 2>/dev/null ||
        { echo "$0: needs python3 with msgpack (scripts/install-deps.sh test)" >&2; exit 2; }
fi
if ! nc -h 2>&1 | head -1 | grep -q OpenBSD; then
    echo "$0: needs netcat-openbsd as nc (for -N)" >&2
    exit 2
fi

startup_timeout=20  # seconds for both address lines
request_timeout=10  # seconds for one nc exchange or one scrape
stop_timeout=15     # seconds for iprotod to exit after SIGTERM

# shellcheck source=../Tests/lib/server.sh
source "$deploy/../Tests/lib/server.sh"
start_workspace iprotod-deploy-check

passed=0
failed=0
skipped=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
# fail NAME [DETAIL...]: each detail is printed indented (it may span lines).
fail() {
    echo "FAIL $1"
    shift
    local line
    for line in "$@"; do printf '%s\n' "$line" | sed 's/^/     /'; done
    failed=$((failed + 1))
}
skip() { echo "skip $1 ($2)"; skipped=$((skipped + 1)); }

dashboard=$deploy/grafana/iprotod.json
kv_dashboard=$deploy/grafana/iproto-kvd.json
# dashboard_exprs FILE: every PromQL expression of the dashboard, one per line.
dashboard_exprs() {
    jq -r '.. | objects | select(has("targets")) | .targets[]? | .expr // empty | gsub("\\s+"; " ")' "$1"
}

# ---------------------------------------------------------------- a) systemd

units=$tmp/units
mkdir "$units"
cp "$deploy/systemd/iprotod.socket" "$deploy/systemd/iprotod.service" "$units/"

# rewrite_execstart FILE [BINARY NAME]: point ExecStart=/usr/local/bin/NAME
# at BINARY, the binary under test (iprotod by default; quoted, so a path
# with spaces works; systemd unquotes it).
rewrite_execstart() {
    local file=$1 binary=${2:-$iprotod} name=${3:-iprotod} line found=0 quoted
    quoted=${binary//\\/\\\\}
    quoted=${quoted//\"/\\\"}
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == "ExecStart=/usr/local/bin/$name "* ]]; then
            line="ExecStart=\"$quoted\" ${line#ExecStart=/usr/local/bin/"$name" }"
            found=1
        fi
        printf '%s\n' "$line"
    done <"$file" >"$file.new"
    mv "$file.new" "$file"
    [[ $found -eq 1 ]]
}

# run_verify DIR OUT [OWN UNIT...]: systemd-analyze verify on the UNITs in DIR
# (default: both iprotod units); writes its output to OUT and the lines that
# are real problems to OUT.problems. OWN is the regex of the units' own
# names (default iprotod): lines naming other units are the host's.
run_verify() {
    local dir=$1 out=$2 own=${3:-iprotod} status=0 line
    local units=("${@:4}")
    [[ ${#units[@]} -gt 0 ]] || units=(./iprotod.socket ./iprotod.service)
    (cd "$dir" && SYSTEMD_LOG_LEVEL=info SYSTEMD_LOG_COLOR=0 \
        timeout 60 systemd-analyze verify --man=no "${units[@]}") >"$out" 2>&1 || status=$?
    : >"$out.problems"
    : >"$out.notes"
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        if [[ $line =~ ^([^:]*/)?(${own})(@[A-Za-z0-9_.-]*)?\.service(:[0-9]+)?:\ Failed\ to\ parse\ system\ call,\ ignoring:\ [A-Za-z0-9_]+$ ]]; then
            echo "$line (syscall unknown to this libseccomp)" >>"$out.notes"
        elif [[ ! $line =~ $own && $line =~ ^([^:[:space:]]*/)?[A-Za-z0-9@._\\-]+\.(service|socket|target|mount|automount|swap|path|timer|slice|scope|device)(:[0-9]+)?:\  ]]; then
            echo "$line (host unit)" >>"$out.notes"
        else
            echo "$line" >>"$out.problems"
        fi
    done <"$out"
    if [[ $status -ne 0 ]]; then
        echo "systemd-analyze verify exited with status $status" >>"$out.problems"
    fi
}

if ! rewrite_execstart "$units/iprotod.service"; then
    fail "a) systemd-analyze verify iprotod.socket iprotod.service" "no line 'ExecStart=/usr/local/bin/iprotod ...' in systemd/iprotod.service"
else
    run_verify "$units" "$tmp/verify.out"
    if [[ -s $tmp/verify.out.notes ]]; then
        sed 's/^/note: tolerated: /' "$tmp/verify.out.notes"
    fi
    if [[ -s $tmp/verify.out.problems ]]; then
        mapfile -t problems <"$tmp/verify.out.problems"
        fail "a) systemd-analyze verify iprotod.socket iprotod.service" "${problems[@]}"
    else
        ok "a) systemd-analyze verify iprotod.socket iprotod.service"
    fi

    # The filter above must still see a real mistake in the unit.
    mkdir "$tmp/broken"
    cp "$units/iprotod.socket" "$tmp/broken/"
    sed 's/^KillSignal=SIGTERM$/KillSignal=SIGTERMX/; s/^\[Service\]$/[Service]\nNoSuchSetting=yes/' \
        "$units/iprotod.service" >"$tmp/broken/iprotod.service"
    run_verify "$tmp/broken" "$tmp/broken.out"
    if grep -q "KillSignal\|SIGTERMX" "$tmp/broken.out.problems" && grep -q NoSuchSetting "$tmp/broken.out.problems"; then
        ok "a) verify reports a broken copy of iprotod.service"
    else
        fail "a) verify reports a broken copy of iprotod.service" \
            "expected problems about KillSignal=SIGTERMX and NoSuchSetting=; systemd-analyze printed:" \
            "$(cat "$tmp/broken.out")"
    fi

    security_status=0
    (cd "$units" && timeout 60 systemd-analyze security --offline=yes --threshold=20 --no-pager \
        ./iprotod.service) >"$tmp/security.out" 2>&1 || security_status=$?
    exposure=$(grep -o 'Overall exposure level for iprotod.service: [0-9.]*' "$tmp/security.out" | awk '{print $NF}' || true)
    if [[ $security_status -eq 0 && -n $exposure ]]; then
        ok "a) systemd-analyze security: exposure $exposure (at most 2.0)"
    else
        fail "a) systemd-analyze security: exposure ${exposure:-unknown} (want at most 2.0)" \
            "$(grep -E '✗|Overall|rror' "$tmp/security.out" || cat "$tmp/security.out")"
    fi
fi

# With ProtectSystem=strict and DynamicUser=yes only the unit's StateDirectory= is
# writable: the documented IPROTOD_DATA_DIR must be that directory, or --data-dir
# fails at start (mkdir: Read-only file system).
state_dir=$(sed -n 's/^StateDirectory=//p' "$deploy/systemd/iprotod.service")
documented=$(sed -n 's/^#[[:space:]]*IPROTOD_DATA_DIR=//p' "$deploy/systemd/iprotod.service" | head -n 1)
if [[ -n $state_dir && $documented == "/var/lib/$state_dir" ]]; then
    ok "a) the durable mode's documented IPROTOD_DATA_DIR ($documented) is the unit's StateDirectory="
else
    fail "a) the durable mode's IPROTOD_DATA_DIR is the unit's StateDirectory=" \
        "StateDirectory=${state_dir:-(none)}, documented IPROTOD_DATA_DIR=${documented:-(none)}"
fi

# ------------------------------------------------------------- b) prometheus

if promtool check config "$deploy/prometheus/prometheus.yml" >"$tmp/promtool-config.out" 2>&1; then
    ok "b) promtool check config prometheus/prometheus.yml"
else
    fail "b) promtool check config prometheus/prometheus.yml" "$(cat "$tmp/promtool-config.out")"
fi

# The Prometheus job scrapes the metrics address the unit documents.
kv_documented_metrics=$(sed -n 's/^#[[:space:]]*KV_METRICS_LISTEN=//p' "$deploy/systemd/iproto-kvd@.service" | head -n 1)
if grep -qE "job_name: iproto-kvd$" "$deploy/prometheus/prometheus.yml" &&
    awk '/job_name: iproto-kvd$/ { job = 1; next } /job_name:/ { job = 0 } job' "$deploy/prometheus/prometheus.yml" |
    grep -qE "^[[:space:]]*- ${kv_documented_metrics//./\\.}$"; then
    ok "b) prometheus.yml job iproto-kvd scrapes the unit's documented KV_METRICS_LISTEN ($kv_documented_metrics)"
else
    fail "b) prometheus.yml job iproto-kvd scrapes the unit's documented KV_METRICS_LISTEN" \
        "no job_name: iproto-kvd with target ${kv_documented_metrics:-(none documented)}"
fi

# ------------------------------------------------------ c) a running iprotod

# The requests sent, with their request_id and the return code expected.
#   1 STORAGE_REPLACE(5, "hello")       0
#   2 STORAGE_READ(5)                   0
#   3 ADM_STORAGE_SWITCH_READONLY       0
#   4 STORAGE_REPLACE(6, "x")           256 (read-only)
#   5 ADM_STORAGE_SWITCH_READWRITE      0
#   6 STORAGE_READ(1000)                4 (out of range)
#   7 func_id 0x00030001                1 (unknown function)
expected_codes=(0 0 0 256 0 4 1)
{
    printf '\x01\x00\x02\x00\x07\x00\x00\x00\x01\x00\x00\x00\x05\xa5hello'
    printf '\x02\x00\x02\x00\x01\x00\x00\x00\x02\x00\x00\x00\x05'
    printf '\x01\x00\x01\x00\x01\x00\x00\x00\x03\x00\x00\x00\xc0'
    printf '\x01\x00\x02\x00\x03\x00\x00\x00\x04\x00\x00\x00\x06\xa1x'
    printf '\x02\x00\x01\x00\x01\x00\x00\x00\x05\x00\x00\x00\xc0'
    printf '\x02\x00\x02\x00\x03\x00\x00\x00\x06\x00\x00\x00\xcd\x03\xe8'
    printf '\x01\x00\x03\x00\x00\x00\x00\x00\x07\x00\x00\x00'
} >"$tmp/requests.bin"

# reply_codes FILE: "request_id:return_code" per response, or "truncated".
reply_codes() {
    local -a b
    read -r -a b < <(od -An -v -tx1 "$1" | tr -s ' \n' '  '; echo) || true
    local i=0 n=${#b[@]} length
    le32() { echo $((16#${b[$1 + 3]}${b[$1 + 2]}${b[$1 + 1]}${b[$1]})); }
    while ((i < n)); do
        if ((i + 16 > n)); then echo truncated; return; fi
        length=$(le32 $((i + 4)))
        echo "$(le32 $((i + 8))):$(le32 $((i + 12)))"
        i=$((i + 16 + length))
    done
    ((i == n)) || echo truncated
}

# start_server: sets server_pid, iproto_port, metrics_port, or prints why not.
start_server() {
    local lines=() i status var scrub=()
    # Settings from the caller's environment would change what is checked.
    for var in $(compgen -e); do
        [[ $var == IPROTOD_* || $var == LOG_LEVEL || $var == LISTEN_* ]] && scrub+=(-u "$var")
    done
    # With a data directory, so that the journal's metrics (on the dashboard too) are exported.
    env "${scrub[@]}" "$iprotod" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$tmp/data" \
        >"$tmp/stdout" 2>"$tmp/stderr" &
    server_pid=$!
    for ((i = 0; i < startup_timeout * 20; i++)); do
        [[ $(wc -l <"$tmp/stdout") -ge 2 ]] && break  # two complete lines
        if ! kill -0 "$server_pid" 2>/dev/null; then
            status=0
            wait "$server_pid" || status=$?
            server_pid=""
            echo "iprotod exited with status $status before printing its metrics address"
            echo "(does this build support --metrics-listen?); its standard error:"
            sed 's/^/  /' "$tmp/stderr"
            return 1
        fi
        sleep 0.05
    done
    mapfile -t -n 2 lines <"$tmp/stdout"
    if [[ ${#lines[@]} -lt 2 ]]; then
        echo "no metrics address line from iprotod within ${startup_timeout}s; stdout was:"
        sed 's/^/  /' "$tmp/stdout"
        return 1
    fi
    if [[ ! ${lines[0]} =~ ^iprotod\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        echo "stdout line 1 is not 'iprotod listening on 127.0.0.1:PORT': ${lines[0]}"
        return 1
    fi
    iproto_port=${BASH_REMATCH[1]}
    if [[ ! ${lines[1]} =~ ^iprotod\ metrics\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        echo "stdout line 2 is not 'iprotod metrics on 127.0.0.1:PORT': ${lines[1]}"
        return 1
    fi
    metrics_port=${BASH_REMATCH[1]}
}

scrape() {
    curl --silent --show-error --fail --max-time "$request_timeout" \
        "http://127.0.0.1:$metrics_port/metrics" -o "$1"
}

scraped=0
if ! start_server >"$tmp/start.out" 2>&1; then
    mapfile -t problems <"$tmp/start.out"
    fail "c) iprotod starts with --metrics-listen and prints both addresses" "${problems[@]}"
    stop_server || true
    skip "c) iproto requests answered" "iprotod did not start"
    skip "c) GET /metrics and promtool check metrics" "iprotod did not start"
    skip "c) iprotod_requests_total counts the requests" "iprotod did not start"
else
    ok "c) iprotod starts with --metrics-listen and prints both addresses (iproto :$iproto_port, metrics :$metrics_port)"

    nc_status=0
    timeout "$request_timeout" nc -N 127.0.0.1 "$iproto_port" <"$tmp/requests.bin" >"$tmp/replies.bin" 2>"$tmp/nc.err" || nc_status=$?
    got=$(reply_codes "$tmp/replies.bin" | tr '\n' ' ')
    want=""
    for i in "${!expected_codes[@]}"; do want+="$((i + 1)):${expected_codes[$i]} "; done
    if [[ $nc_status -eq 0 && $got == "$want" ]]; then
        ok "c) iproto requests answered (request_id:code $want)"
    else
        fail "c) iproto requests answered" "nc status $nc_status; want request_id:code ${want}" "got ${got:-no reply}" \
            "$(cat "$tmp/nc.err")"
    fi

    # Counters may be updated just after a reply is sent: re-scrape until
    # they count the requests sent (bounded), then lint the last scrape.
    sent=${#expected_codes[@]}
    counted=-1
    scrape_error=""
    for ((i = 0; i < 5 * 10; i++)); do
        if ! scrape "$tmp/metrics.txt" 2>"$tmp/curl.err"; then
            scrape_error=$(cat "$tmp/curl.err")
            break
        fi
        # "name{labels} value [timestamp]": sum the values.
        counted=$(awk '/^iprotod_requests_total[{ ]/ { sub(/^[^ {]+(\{.*\})?[ ]+/, ""); sum += $1 }
                       END { printf "%d", sum }' "$tmp/metrics.txt")
        ((counted >= sent)) && break
        sleep 0.1
    done
    if [[ -n $scrape_error ]]; then
        fail "c) GET /metrics and promtool check metrics" "curl http://127.0.0.1:$metrics_port/metrics: $scrape_error"
        skip "c) iprotod_requests_total counts the requests" "no scrape"
    else
        scraped=1
        if promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool-metrics.out" 2>&1; then
            ok "c) GET /metrics and promtool check metrics ($(grep -c '^# TYPE ' "$tmp/metrics.txt") families)"
        else
            fail "c) GET /metrics and promtool check metrics" "$(cat "$tmp/promtool-metrics.out")"
        fi
        if ((counted >= sent)); then
            ok "c) iprotod_requests_total counts the $sent requests (sum $counted)"
        else
            fail "c) iprotod_requests_total counts the $sent requests" "sum of iprotod_requests_total is $counted after 5s"
        fi
    fi
    stop_server || true
fi

# ---------------------------------------------- d) dashboard metrics exported

# dashboard_metric_names: the metric names in the dashboard's PromQL. Drops
# strings, label matchers, ranges, Grafana variables, by/on/... label lists
# and numbers; what is left is function names (followed by "("), keywords
# and metric names.
dashboard_metric_names() {
    {
        dashboard_exprs "$1"
        jq -r '.templating.list[]? | select(.type == "query")
               | (.query | if type == "object" then .query else . end) // ""
               | capture("label_values\\((?<m>[^,)]+),").m // empty' "$1"
    } | sed -E \
        -e 's/"([^"\\]|\\.)*"//g' \
        -e "s/'([^'\\\\]|\\\\.)*'//g" \
        -e 's/\{[^}]*\}//g' \
        -e 's/\[[^]]*\]//g' \
        -e 's/\$\{[^}]*\}|\$[A-Za-z0-9_]+//g' \
        -e 's/(^|[^A-Za-z0-9_:])(by|without|on|ignoring|group_left|group_right)[[:space:]]*\([^)]*\)/\1 /g' \
        -e 's/(^|[^A-Za-z0-9_:])[0-9][0-9A-Za-z_.]*/\1 /g' |
        grep -oE '[A-Za-z_:][A-Za-z0-9_:]*[[:space:]]*\(?' |
        grep -vE '\($' |
        sed -E 's/[[:space:]]+$//' |
        grep -vxE 'and|or|unless|bool|by|without|on|ignoring|group_left|group_right|offset|atan2|inf|nan|Inf|NaN|start|end' |
        sort -u || true
}

# check_dashboard_metrics LABEL DASHBOARD SCRAPED METRICS: every metric of
# DASHBOARD is a family of the scrape in METRICS (SCRAPED is 1 if there is one).
check_dashboard_metrics() {
    local label=$1 file=$2 scraped_ok=$3 metrics=$4 name family
    local names=$tmp/$(basename "$file" .json)-metrics.txt families=$tmp/$(basename "$file" .json)-families.txt
    local unknown=()
    dashboard_metric_names "$file" >"$names"
    if [[ ! -s $names ]]; then
        fail "$label" "found no metric names in $file"
    elif [[ $scraped_ok -eq 0 ]]; then
        skip "$label" "no scrape to compare $(wc -l <"$names") names with"
    else
        awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$metrics" | sort -u >"$families"
        unknown=()
        while IFS= read -r name; do
            family=$name
            if ! grep -qxF "$family" "$families"; then
                [[ $name =~ ^(.+)_(bucket|sum|count|total)$ ]] && family=${BASH_REMATCH[1]}
                grep -qxF "$family" "$families" || unknown+=("$name")
            fi
        done <"$names"
        if [[ ${#unknown[@]} -eq 0 ]]; then
            ok "$label ($(wc -l <"$names") names, all in the scrape)"
        else
            fail "$label" "not among the scraped families (# TYPE lines): ${unknown[*]}"
        fi
    fi
}

check_dashboard_metrics "d) dashboard metrics are exported" "$dashboard" "$scraped" "$tmp/metrics.txt"

# --------------------------------------------------------------- e) dashboard

# check_dashboard_layout TAG DASHBOARD WHAT UNIT...: DASHBOARD is valid JSON
# with the template variables, units (at least one panel with each UNIT) and
# a gridPos on every panel, and its expressions parse as PromQL.
check_dashboard_layout() {
    local tag=$1 file=$2 what=$3 name base dashboard_ok=1 problems expr n required
    name=grafana/$(basename "$file")
    base=$(basename "$file" .json)
    required=$(printf '%s\n' "${@:4}" | jq -R . | jq -sc .)
    dashboard_ok=1
    if ! jq empty "$file" 2>"$tmp/$base.jq.err"; then
        fail "$tag $name is valid JSON" "$(cat "$tmp/$base.jq.err")"
        dashboard_ok=0
    else
        # Structural problems, one per line; empty output means none.
        jq -r '
          def panels: .panels[]? | (., (.panels[]?));
          def overlap(a; b): a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h;
          [panels] as $all
          | (if (.schemaVersion // 0) < 36 then "schemaVersion \(.schemaVersion) is older than 36" else empty end),
            (if ([.templating.list[]? | select(.type == "datasource" and .name == "DS_PROMETHEUS" and .query == "prometheus")] | length) != 1
             then "no datasource template variable DS_PROMETHEUS of type prometheus" else empty end),
            (if ([.templating.list[]? | select(.name == "instance" and .type == "query")] | length) != 1
             then "no query template variable \"instance\"" else empty end),
            ($all[] | select(.gridPos == null) | "panel \"\(.title)\" has no gridPos"),
            ($all[] | select(.gridPos != null) | select(.gridPos.x < 0 or .gridPos.w < 1 or .gridPos.h < 1 or .gridPos.x + .gridPos.w > 24)
              | "panel \"\(.title)\" gridPos \(.gridPos | tojson) is outside 24 columns"),
            ([$all[] | select(.gridPos != null)] as $g
              | range(0; $g | length) as $i | range($i + 1; $g | length) as $j
              | select(overlap($g[$i].gridPos; $g[$j].gridPos))
              | "panels \"\($g[$i].title)\" and \"\($g[$j].title)\" overlap"),
            ($all[] | select(.type != "row")
              | select((.datasource.uid // "") != "${DS_PROMETHEUS}") | "panel \"\(.title)\" does not use ${DS_PROMETHEUS}"),
            ($all[] | select(.type != "row") | select((.targets // []) | length == 0) | "panel \"\(.title)\" has no query"),
            ($all[] | select(.type != "row") | select(.fieldConfig.defaults.unit == null) | "panel \"\(.title)\" has no unit"),
            ([$all[].fieldConfig.defaults.unit] as $units
              | $required[]
              | select(. as $u | $units | index($u) | not) | "no panel with unit \(.)")
        ' --argjson required "$required" "$file" >"$tmp/$base.problems" 2>&1 || echo "jq failed on the dashboard" >>"$tmp/$base.problems"
        if [[ -s $tmp/$base.problems ]]; then
            mapfile -t problems <"$tmp/$base.problems"
            fail "$tag $name layout, variables and units" "${problems[@]}"
        else
            ok "$tag $name layout, variables and units ($(jq '[.. | objects | select(has("gridPos"))] | length' "$file") panels)"
        fi
    fi

    if [[ $dashboard_ok -eq 1 ]]; then
        # promtool parses PromQL in rule files; Grafana's variables become
        # literals first ($__rate_interval and $__range are durations).
        {
            echo "groups:"
            echo "  - name: dashboard"
            echo "    rules:"
            n=0
            while IFS= read -r expr; do
                n=$((n + 1))
                expr=${expr//\$__rate_interval/1m}
                expr=${expr//\$__interval/1m}
                expr=${expr//\$__range/1h}
                expr=${expr//\$instance/.*}
                printf '      - record: dashboard:expr_%d\n        expr: %s\n' "$n" "$(jq -Rn --arg e "$expr" '$e')"
            done < <(dashboard_exprs "$file")
        } >"$tmp/$base-rules.yml"
        if promtool check rules "$tmp/$base-rules.yml" >"$tmp/$base-promtool-rules.out" 2>&1; then
            ok "$tag every $what expression parses as PromQL ($(grep -c 'record:' "$tmp/$base-rules.yml") expressions)"
        else
            fail "$tag every $what expression parses as PromQL" "$(cat "$tmp/$base-promtool-rules.out")"
        fi
    fi
}

check_dashboard_layout "e)" "$dashboard" dashboard reqps s percentunit bytes

# ------------------------------------------------ f) iproto-kvd@.service

kv_unit=$deploy/systemd/iproto-kvd@.service
kv_units=$tmp/kv-units
mkdir "$kv_units"
cp "$kv_unit" "$kv_units/"
# verify and security load the template through an instance name.
kv_instance=iproto-kvd@1.service

if [[ -z $kvd ]]; then
    skip "f) systemd-analyze verify $kv_instance" "no PATH_TO_IPROTO_KVD"
    skip "f) verify reports a broken copy of iproto-kvd@.service" "no PATH_TO_IPROTO_KVD"
elif ! rewrite_execstart "$kv_units/iproto-kvd@.service" "$kvd" iproto-kvd; then
    fail "f) systemd-analyze verify $kv_instance" "no line 'ExecStart=/usr/local/bin/iproto-kvd ...' in systemd/iproto-kvd@.service"
else
    run_verify "$kv_units" "$tmp/kv-verify.out" iproto-kvd "./$kv_instance"
    if [[ -s $tmp/kv-verify.out.notes ]]; then
        sed 's/^/note: tolerated: /' "$tmp/kv-verify.out.notes"
    fi
    if [[ -s $tmp/kv-verify.out.problems ]]; then
        mapfile -t problems <"$tmp/kv-verify.out.problems"
        fail "f) systemd-analyze verify $kv_instance" "${problems[@]}"
    else
        ok "f) systemd-analyze verify $kv_instance"
    fi

    mkdir "$tmp/kv-broken"
    sed 's/^KillSignal=SIGTERM$/KillSignal=SIGTERMX/; s/^\[Service\]$/[Service]\nNoSuchSetting=yes/' \
        "$kv_units/iproto-kvd@.service" >"$tmp/kv-broken/iproto-kvd@.service"
    run_verify "$tmp/kv-broken" "$tmp/kv-broken.out" iproto-kvd "./$kv_instance"
    if grep -q "KillSignal\|SIGTERMX" "$tmp/kv-broken.out.problems" && grep -q NoSuchSetting "$tmp/kv-broken.out.problems"; then
        ok "f) verify reports a broken copy of iproto-kvd@.service"
    else
        fail "f) verify reports a broken copy of iproto-kvd@.service" \
            "expected problems about KillSignal=SIGTERMX and NoSuchSetting=; systemd-analyze printed:" \
            "$(cat "$tmp/kv-broken.out")"
    fi
fi

security_status=0
(cd "$kv_units" && timeout 60 systemd-analyze security --offline=yes --threshold=20 --no-pager \
    "./$kv_instance") >"$tmp/kv-security.out" 2>&1 || security_status=$?
exposure=$(grep -o "Overall exposure level for $kv_instance: [0-9.]*" "$tmp/kv-security.out" | awk '{print $NF}' || true)
if [[ $security_status -eq 0 && -n $exposure ]]; then
    ok "f) systemd-analyze security $kv_instance: exposure $exposure (at most 2.0)"
else
    fail "f) systemd-analyze security $kv_instance: exposure ${exposure:-unknown} (want at most 2.0)" \
        "$(grep -E '✗|Overall|rror' "$tmp/kv-security.out" || cat "$tmp/kv-security.out")"
fi

# The settings the unit promises: its state directory is the --data-dir, a
# per-instance environment file, restarts that stop at 64 and 65, the
# network up before start, and every KV_ variable on ExecStart= documented
# in the header.
kv_problems=()
kv_execstart=$(sed -n 's/^ExecStart=//p' "$kv_unit")
[[ $(grep -c '^StateDirectory=' "$kv_unit") -eq 1 && $(sed -n 's/^StateDirectory=//p' "$kv_unit") == "iproto-kvd/%i" ]] ||
    kv_problems+=("StateDirectory= is not exactly iproto-kvd/%i")
[[ $kv_execstart == *"--data-dir \${STATE_DIRECTORY} "* ]] ||
    kv_problems+=("ExecStart= does not pass --data-dir \${STATE_DIRECTORY} (the StateDirectory=, the only writable place)")
grep -qx 'EnvironmentFile=/etc/iproto-kvd/%i.env' "$kv_unit" || kv_problems+=("no EnvironmentFile=/etc/iproto-kvd/%i.env")
grep -qx 'Restart=on-failure' "$kv_unit" || kv_problems+=("no Restart=on-failure")
grep -qx 'RestartPreventExitStatus=64 65' "$kv_unit" || kv_problems+=("no RestartPreventExitStatus=64 65")
grep -qx 'After=network-online.target' "$kv_unit" && grep -qx 'Wants=network-online.target' "$kv_unit" ||
    kv_problems+=("not Wants= and After=network-online.target")
kv_vars=$(grep -oE '\$\{?KV_[A-Z_]+' <<<"$kv_execstart" | tr -d '${' | sort -u)
for var in $kv_vars; do
    grep -qE "^#[[:space:]]+$var=" "$kv_unit" || kv_problems+=("$var is used on ExecStart= but not documented as '#   $var=...'")
done
if [[ ${#kv_problems[@]} -eq 0 ]]; then
    ok "f) iproto-kvd@.service: --data-dir is StateDirectory=iproto-kvd/%i, %i.env, RestartPreventExitStatus=64 65, documented $(wc -w <<<"$kv_vars") variables"
else
    fail "f) iproto-kvd@.service settings" "${kv_problems[@]}"
fi

# ------------------------------------------- g) a running iproto-kvd and etcd

etcd_pid=""
kv_pid=""
# stop_pid PID NAME: SIGTERM, wait up to stop_timeout, then SIGKILL; returns its exit status.
stop_pid() {
    local pid=$1 name=$2 status=0 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "  $name $pid ignored SIGTERM for ${stop_timeout}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}
stop_kv() {
    if [[ -n $kv_pid ]]; then stop_pid "$kv_pid" iproto-kvd || true; kv_pid=""; fi
    if [[ -n $etcd_pid ]]; then stop_pid "$etcd_pid" etcd || true; etcd_pid=""; fi
}
# etcd and the node are stopped on every exit, as iprotod is.
trap 'stop_kv; stop_server || true; rm -rf "$tmp"' EXIT

# free_ports N: N distinct free loopback ports, one a line.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# start_etcd: a one-member etcd on free loopback ports; sets etcd_pid, etcd_url.
start_etcd() {
    local ports i
    mapfile -t ports < <(free_ports 2)
    etcd_url=http://127.0.0.1:${ports[0]}
    local peer=http://127.0.0.1:${ports[1]}
    etcd --name check --data-dir "$tmp/etcd" \
        --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "check=$peer" \
        --heartbeat-interval 25 --election-timeout 250 >"$tmp/etcd.log" 2>&1 &
    etcd_pid=$!
    for ((i = 0; i < startup_timeout * 10; i++)); do
        curl --silent --max-time 1 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"' && return 0
        if ! kill -0 "$etcd_pid" 2>/dev/null; then
            wait "$etcd_pid" || true
            etcd_pid=""
            echo "etcd exited before it was healthy; its log:"
            tail -n 20 "$tmp/etcd.log" | sed 's/^/  /'
            return 1
        fi
        sleep 0.1
    done
    echo "etcd at $etcd_url not healthy within ${startup_timeout}s; its log:"
    tail -n 20 "$tmp/etcd.log" | sed 's/^/  /'
    return 1
}

# start_kv: iproto-kvd with --etcd and replication factor 1 on free ports;
# sets kv_pid, kv_port, kv_metrics_port.
start_kv() {
    local lines=() i status var scrub=()
    # A caller's socket-activation variables would replace --listen.
    for var in $(compgen -e); do
        [[ $var == LISTEN_* ]] && scrub+=(-u "$var")
    done
    env "${scrub[@]}" "$kvd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$tmp/kv1" \
        --etcd "$etcd_url" --replication-factor 1 >"$tmp/kv.stdout" 2>"$tmp/kv.stderr" &
    kv_pid=$!
    for ((i = 0; i < startup_timeout * 20; i++)); do
        [[ $(wc -l <"$tmp/kv.stdout") -ge 2 ]] && break
        if ! kill -0 "$kv_pid" 2>/dev/null; then
            status=0
            wait "$kv_pid" || status=$?
            kv_pid=""
            echo "iproto-kvd exited with status $status before printing its metrics address; its standard error:"
            sed 's/^/  /' "$tmp/kv.stderr"
            return 1
        fi
        sleep 0.05
    done
    mapfile -t -n 2 lines <"$tmp/kv.stdout"
    if [[ ${#lines[@]} -lt 2 ]]; then
        echo "no metrics address line from iproto-kvd within ${startup_timeout}s; stdout was:"
        sed 's/^/  /' "$tmp/kv.stdout"
        return 1
    fi
    if [[ ! ${lines[0]} =~ ^iproto-kvd\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        echo "stdout line 1 is not 'iproto-kvd listening on 127.0.0.1:PORT': ${lines[0]}"
        return 1
    fi
    kv_port=${BASH_REMATCH[1]}
    if [[ ! ${lines[1]} =~ ^iproto-kvd\ metrics\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
        echo "stdout line 2 is not 'iproto-kvd metrics on 127.0.0.1:PORT': ${lines[1]}"
        return 1
    fi
    kv_metrics_port=${BASH_REMATCH[1]}
}

# kv_requests ADDRESS: waits (bounded) until KV_HEARTBEAT's leader is ADDRESS,
# then KV_SET of a new UUID4 key and KV_GET of it; prints what happened and
# "sent HEARTBEATS SETS GETS" last; exits non-zero on a wrong answer.
kv_requests() {
    python3 - "$1" "$startup_timeout" "$request_timeout" <<'PY'
import socket, struct, sys, time, uuid
import msgpack

address, wait, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
KV_SET, KV_GET, KV_HEARTBEAT = 0x00030001, 0x00030002, 0x00030004
host, port = address.rsplit(":", 1)
sock = socket.create_connection((host, int(port)), timeout=timeout)
request_id = 0

def call(func_id, *args):
    # iproto (docs/protocol.md), little-endian u32s: a request is func_id, body
    # length, request_id; a reply adds the return code.
    global request_id
    request_id += 1
    body = b"".join(msgpack.packb(a, use_bin_type=True) for a in args)
    sock.sendall(struct.pack("<III", func_id, len(body), request_id) + body)
    def read(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data
    _, length, reply_id, code = struct.unpack("<IIII", read(16))
    reply = read(length)
    if reply_id != request_id:
        raise ValueError(f"reply to request {reply_id}, expected {request_id}")
    return code, (msgpack.unpackb(reply, raw=False) if reply else None)

heartbeats = 0
deadline = time.monotonic() + wait
while True:
    code, reply = call(KV_HEARTBEAT)
    heartbeats += 1
    leader = reply.get("leader") if code == 0 and isinstance(reply, dict) else None
    if leader == address:
        break
    if time.monotonic() > deadline:
        sys.exit(f"KV_HEARTBEAT: leader is {leader!r}, not {address}, after {wait:.0f} s (code {code}, {reply!r})")
    time.sleep(0.1)
print(f"leader {address} after {heartbeats} KV_HEARTBEAT, replication_factor {reply.get('replication_factor')}")
key, value = str(uuid.uuid4()), "deploy-check " + time.strftime("%H:%M:%S")
code, reply = call(KV_SET, key, value)
if code != 0:
    sys.exit(f"KV_SET {key}: code 0x{code:x}: {reply!r}")
code, reply = call(KV_GET, key)
if code != 0 or reply != value:
    sys.exit(f"KV_GET {key}: code 0x{code:x}, got {reply!r}, want {value!r}")
print(f"KV_SET and KV_GET {key} = {value!r}")
print(f"sent {heartbeats} 1 1")
PY
}

# metric_sum FILE NAME [LABEL_REGEX]: the sum of NAME's samples in FILE whose
# labels match LABEL_REGEX.
metric_sum() {
    awk -v name="$2" -v labels="${3:-}" '
        index($0, name) == 1 {
            rest = substr($0, length(name) + 1)
            if (rest !~ /^[{ ]/) next
            lab = ""
            if (rest ~ /^\{/) { lab = substr(rest, 1, index(rest, "}")) }
            if (labels != "" && lab !~ labels) next
            sub(/^(\{.*\})?[ ]+/, "", rest)
            split(rest, f, " ")
            sum += f[1]
        }
        END { printf "%.0f", sum }' "$1"
}

kv_scraped=0
if [[ -z $kvd ]]; then
    skip "g) etcd and iproto-kvd start" "no PATH_TO_IPROTO_KVD"
elif ! start_etcd >"$tmp/etcd-start.out" 2>&1; then
    mapfile -t problems <"$tmp/etcd-start.out"
    fail "g) etcd starts on free loopback ports" "${problems[@]}"
    skip "g) iproto-kvd starts, leads, answers and exports its metrics" "no etcd"
elif ! start_kv >"$tmp/kv-start.out" 2>&1; then
    mapfile -t problems <"$tmp/kv-start.out"
    fail "g) iproto-kvd --etcd starts with --metrics-listen and prints both addresses" "${problems[@]}"
    for check in "it leads and answers KV_SET, KV_GET" "GET /metrics of iproto-kvd and promtool check metrics" \
        "iproto_kv_leader is 1" "iproto_kv_requests_total counts the requests" \
        "exit status 64 and 65" "iproto-kvd exits 0 on SIGTERM"; do
        skip "g) $check" "iproto-kvd did not start"
    done
    stop_kv
else
    ok "g) etcd ($etcd_url) and iproto-kvd --etcd --replication-factor 1 start (iproto :$kv_port, metrics :$kv_metrics_port)"

    kv_status=0
    kv_requests "127.0.0.1:$kv_port" >"$tmp/kv-requests.out" 2>&1 || kv_status=$?
    sent_line=$(grep '^sent ' "$tmp/kv-requests.out" || true)
    if [[ $kv_status -eq 0 && -n $sent_line ]]; then
        read -r _ sent_heartbeats sent_sets sent_gets <<<"$sent_line"
        ok "g) it leads (KV_HEARTBEAT leader is its address) and answers KV_SET, KV_GET ($(head -n 1 "$tmp/kv-requests.out"))"
    else
        sent_heartbeats=0 sent_sets=0 sent_gets=0
        fail "g) it leads and answers KV_SET, KV_GET" "$(cat "$tmp/kv-requests.out")" \
            "iproto-kvd's standard error (last lines):" "$(tail -n 10 "$tmp/kv.stderr")"
    fi

    # Re-scrape until the requests counter counts what was sent and the
    # node's gauges (published periodically, not at the moment it wins)
    # show it leading (bounded).
    scrape_error=""
    counted_sets=0 counted_gets=0 counted_heartbeats=0
    for ((i = 0; i < 5 * 10; i++)); do
        if ! curl --silent --show-error --fail --max-time "$request_timeout" \
            "http://127.0.0.1:$kv_metrics_port/metrics" -o "$tmp/kv-metrics.txt" 2>"$tmp/kv-curl.err"; then
            scrape_error=$(cat "$tmp/kv-curl.err")
            break
        fi
        counted_sets=$(metric_sum "$tmp/kv-metrics.txt" iproto_kv_requests_total 'function="KV_SET"')
        counted_gets=$(metric_sum "$tmp/kv-metrics.txt" iproto_kv_requests_total 'function="KV_GET"')
        counted_heartbeats=$(metric_sum "$tmp/kv-metrics.txt" iproto_kv_requests_total 'function="KV_HEARTBEAT"')
        ((counted_sets >= sent_sets && counted_gets >= sent_gets && counted_heartbeats >= sent_heartbeats)) &&
            [[ $(metric_sum "$tmp/kv-metrics.txt" iproto_kv_leader) == 1 ]] && break
        sleep 0.1
    done
    if [[ -n $scrape_error ]]; then
        fail "g) GET /metrics of iproto-kvd and promtool check metrics" "curl http://127.0.0.1:$kv_metrics_port/metrics: $scrape_error"
    else
        kv_scraped=1
        if promtool check metrics <"$tmp/kv-metrics.txt" >"$tmp/kv-promtool-metrics.out" 2>&1; then
            ok "g) GET /metrics of iproto-kvd and promtool check metrics ($(grep -c '^# TYPE ' "$tmp/kv-metrics.txt") families)"
        else
            fail "g) GET /metrics of iproto-kvd and promtool check metrics" "$(cat "$tmp/kv-promtool-metrics.out")"
        fi
        leader_value=$(metric_sum "$tmp/kv-metrics.txt" iproto_kv_leader)
        epoch_value=$(metric_sum "$tmp/kv-metrics.txt" iproto_kv_epoch)
        if [[ $leader_value == 1 ]] && awk -v e="$epoch_value" 'BEGIN { exit !(e > 0) }'; then
            ok "g) iproto_kv_leader is 1 (epoch $epoch_value)"
        else
            fail "g) iproto_kv_leader is 1 and iproto_kv_epoch is set" \
                "iproto_kv_leader $leader_value, iproto_kv_epoch $epoch_value after 5s" "$(grep -E '^iproto_kv_(leader|epoch)' "$tmp/kv-metrics.txt")"
        fi
        if ((sent_sets > 0 && counted_sets >= sent_sets && counted_gets >= sent_gets && counted_heartbeats >= sent_heartbeats)); then
            ok "g) iproto_kv_requests_total counts them (KV_SET $counted_sets, KV_GET $counted_gets, KV_HEARTBEAT $counted_heartbeats)"
        else
            fail "g) iproto_kv_requests_total counts the requests" \
                "sent KV_SET $sent_sets, KV_GET $sent_gets, KV_HEARTBEAT $sent_heartbeats; counted $counted_sets, $counted_gets, $counted_heartbeats after 5s" \
                "$(grep '^iproto_kv_requests_total' "$tmp/kv-metrics.txt")"
        fi
    fi

    # The unit's RestartPreventExitStatus=64 65 rests on these statuses.
    touch "$tmp/not-a-dir"
    rf_status=0
    timeout "$startup_timeout" "$kvd" --listen 127.0.0.1:0 --data-dir "$tmp/kv2" --join "127.0.0.1:$kv_port" \
        --replication-factor 2 >"$tmp/kv2.out" 2>&1 || rf_status=$?
    dir_status=0
    timeout "$startup_timeout" "$kvd" --listen 127.0.0.1:0 --data-dir "$tmp/not-a-dir" --etcd "$etcd_url" \
        --replication-factor 1 >"$tmp/kv3.out" 2>&1 || dir_status=$?
    if [[ $rf_status -eq 64 && $dir_status -eq 65 ]]; then
        ok "g) exit status 64 for a replication factor that differs from the cluster's, 65 for an unusable --data-dir"
    else
        fail "g) exit status 64 for a replication factor mismatch, 65 for an unusable --data-dir" \
            "--join with --replication-factor 2: status $rf_status" "$(tail -n 3 "$tmp/kv2.out")" \
            "--data-dir a regular file: status $dir_status" "$(tail -n 3 "$tmp/kv3.out")"
    fi

    kv_stop_status=0
    stop_pid "$kv_pid" iproto-kvd || kv_stop_status=$?
    kv_pid=""
    if [[ $kv_stop_status -eq 0 ]]; then
        ok "g) iproto-kvd exits 0 on SIGTERM"
    else
        fail "g) iproto-kvd exits 0 on SIGTERM" "status $kv_stop_status" "$(tail -n 5 "$tmp/kv.stderr")"
    fi
    stop_kv
fi

# ------------------------------------ h) kv dashboard metrics exported

if [[ -z $kvd ]]; then
    skip "h) kv dashboard metrics are exported" "no PATH_TO_IPROTO_KVD"
else
    check_dashboard_metrics "h) kv dashboard metrics are exported" "$kv_dashboard" "$kv_scraped" "$tmp/kv-metrics.txt"
fi

# --------------------------------------------------- i) kv dashboard

check_dashboard_layout "i)" "$kv_dashboard" "kv dashboard" reqps s short none

# ------------------------------------------------ j) the file store's units

files_dashboard=$deploy/grafana/iproto-files.json
if [[ -z $filegw ]]; then
    skip "j) systemd-analyze verify iproto-filegw.service iproto-volumed@1.service" "no PATH_TO_IPROTO_FILEGW"
else
    files_units=$tmp/files-units
    mkdir "$files_units"
    cp "$deploy/systemd/iproto-filegw.service" "$deploy/systemd/iproto-volumed@.service" "$files_units/"
    if ! rewrite_execstart "$files_units/iproto-filegw.service" "$filegw" iproto-filegw ||
        ! rewrite_execstart "$files_units/iproto-volumed@.service" "$volumed" iproto-volumed; then
        fail "j) systemd-analyze verify the file store's units" "no ExecStart=/usr/local/bin/iproto-filegw or iproto-volumed line"
    else
        run_verify "$files_units" "$tmp/files-verify.out" 'iproto-filegw|iproto-volumed' ./iproto-filegw.service ./iproto-volumed@1.service
        [[ -s $tmp/files-verify.out.notes ]] && sed 's/^/note: tolerated: /' "$tmp/files-verify.out.notes"
        if [[ -s $tmp/files-verify.out.problems ]]; then
            mapfile -t problems <"$tmp/files-verify.out.problems"
            fail "j) systemd-analyze verify iproto-filegw.service iproto-volumed@1.service" "${problems[@]}"
        else
            ok "j) systemd-analyze verify iproto-filegw.service iproto-volumed@1.service"
        fi
        mkdir "$tmp/files-broken"
        sed 's/^KillSignal=SIGTERM$/KillSignal=SIGTERMX/' "$files_units/iproto-filegw.service" >"$tmp/files-broken/iproto-filegw.service"
        run_verify "$tmp/files-broken" "$tmp/files-broken.out" iproto-filegw ./iproto-filegw.service
        if grep -q "SIGTERMX" "$tmp/files-broken.out.problems"; then
            ok "j) verify reports a broken copy of iproto-filegw.service"
        else
            fail "j) verify reports a broken copy of iproto-filegw.service" "$(cat "$tmp/files-broken.out")"
        fi
        for unit in iproto-filegw.service iproto-volumed@1.service; do
            (cd "$files_units" && timeout 60 systemd-analyze security --offline=yes --threshold=20 --no-pager "./$unit") \
                >"$tmp/files-security.out" 2>&1 && status=0 || status=$?
            exposure=$(grep -o "Overall exposure level for $unit: [0-9.]*" "$tmp/files-security.out" | awk '{print $NF}' || true)
            if [[ $status -eq 0 && -n $exposure ]]; then
                ok "j) systemd-analyze security $unit: exposure $exposure (at most 2.0)"
            else
                fail "j) systemd-analyze security $unit: exposure ${exposure:-unknown} (want at most 2.0)" "$(cat "$tmp/files-security.out")"
            fi
        done
    fi
    if grep -q 'ExecStart=/usr/local/bin/iproto-filegw --data-dir ${STATE_DIRECTORY} ' "$deploy/systemd/iproto-filegw.service" &&
        grep -q 'ExecStart=/usr/local/bin/iproto-volumed --data-dir ${STATE_DIRECTORY} ' "$deploy/systemd/iproto-volumed@.service"; then
        ok "j) both units pass their StateDirectory= as --data-dir"
    else
        fail "j) both units pass their StateDirectory= as --data-dir" "ExecStart= lines do not start with --data-dir \${STATE_DIRECTORY}"
    fi
    filegw_listen=$(sed -n 's/^Environment=FILEGW_LISTEN=//p' "$deploy/systemd/iproto-filegw.service")
    vol_metrics=$(sed -n 's/^#[[:space:]]*VOL_METRICS_LISTEN=//p' "$deploy/systemd/iproto-volumed@.service" | head -n 1)
    jobs_ok=1
    for pair in "iproto-filegw $filegw_listen" "iproto-volumed $vol_metrics"; do
        read -r job target <<<"$pair"
        awk -v job="$job" '$0 ~ "job_name: " job "$" { on = 1; next } /job_name:/ { on = 0 } on' "$deploy/prometheus/prometheus.yml" |
            grep -qE "^[[:space:]]*- ${target//./\\.}$" || jobs_ok=0
    done
    if [[ $jobs_ok -eq 1 ]]; then
        ok "j) prometheus.yml scrapes the gateway ($filegw_listen) and node 1 ($vol_metrics) where the units say"
    else
        fail "j) prometheus.yml scrapes the gateway and node 1 where the units say" "gateway $filegw_listen, node $vol_metrics"
    fi
fi

# ------------------------------------------- k) a running gateway and node

files_scraped=0
if [[ -z $filegw ]]; then
    skip "k) iproto-filegw and iproto-volumed start and export their metrics" "no PATH_TO_IPROTO_FILEGW"
else
    "$filegw" --listen 127.0.0.1:0 --data-dir "$tmp/filegw" >"$tmp/filegw.out" 2>"$tmp/filegw.err" &
    filegw_pid=$!
    gw_address=""
    for ((i = 0; i < startup_timeout * 10; i++)); do
        gw_address=$(sed -n 's/^iproto-filegw listening on //p' "$tmp/filegw.out")
        [[ -n $gw_address ]] && break
        sleep 0.1
    done
    "$volumed" --listen 127.0.0.1:0 --data-dir "$tmp/volumed" --capacity 64M --gateway "http://$gw_address" \
        --registration-interval 0.2 --metrics-listen 127.0.0.1:0 >"$tmp/volumed.out" 2>"$tmp/volumed.err" &
    volumed_pid=$!
    vol_metrics_address=""
    for ((i = 0; i < startup_timeout * 10; i++)); do
        vol_metrics_address=$(sed -n 's/^iproto-volumed metrics on //p' "$tmp/volumed.out")
        [[ -n $vol_metrics_address ]] && break
        sleep 0.1
    done
    # A file needs 6 nodes at parity 1: with one node the PUT must be refused (503), cleanly.
    for ((i = 0; i < startup_timeout * 10; i++)); do
        curl -s "http://$gw_address/nodes" | grep -q '"alive":true' && break
        sleep 0.1
    done
    put_status=$(curl -s -o /dev/null -w '%{http_code}' -T "$deploy/README.md" "http://$gw_address/files/deploy-check" || true)
    # The per-node gauges are published every second: wait (bounded) for the node's to appear.
    for ((i = 0; i < 5 * 10; i++)); do
        curl -s "http://$gw_address/metrics" | grep -q '^iproto_files_node_live_bytes{' && break
        sleep 0.1
    done
    if [[ -n $gw_address && -n $vol_metrics_address && $put_status == 503 ]] &&
        curl -sf "http://$gw_address/metrics" -o "$tmp/files-metrics.txt" &&
        curl -sf "http://$vol_metrics_address/metrics" >>"$tmp/files-metrics.txt"; then
        files_scraped=1
        ok "k) iproto-filegw ($gw_address) and iproto-volumed (metrics $vol_metrics_address) start; a PUT with 1 of 6 nodes is 503"
        if promtool check metrics <"$tmp/files-metrics.txt" >"$tmp/files-promtool.out" 2>&1; then
            ok "k) promtool check metrics on both scrapes ($(grep -c '^# TYPE ' "$tmp/files-metrics.txt") families)"
        else
            fail "k) promtool check metrics on both scrapes" "$(cat "$tmp/files-promtool.out")"
        fi
    else
        fail "k) iproto-filegw and iproto-volumed start and export their metrics" \
            "gateway '$gw_address', node metrics '$vol_metrics_address', PUT status $put_status" \
            "$(tail -n 5 "$tmp/filegw.err")" "$(tail -n 5 "$tmp/volumed.err")"
    fi
    kill "$volumed_pid" "$filegw_pid" 2>/dev/null || true
    wait "$volumed_pid" "$filegw_pid" 2>/dev/null || true
fi
if [[ -n $filegw ]]; then
    check_dashboard_metrics "k) file store dashboard metrics are exported" "$files_dashboard" "$files_scraped" "$tmp/files-metrics.txt"
fi

# ------------------------------------------------- l) file store dashboard

check_dashboard_layout "l)" "$files_dashboard" "file store dashboard" reqps Bps s bytes percentunit

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
