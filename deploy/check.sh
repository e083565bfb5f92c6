#!/usr/bin/env bash
# Checks the deployment files in deploy/ and the metrics a real iprotod exports.
#
#   deploy/check.sh PATH_TO_IPROTOD
#
# Debian packages it needs (scripts/install-deps.sh test installs them):
#   systemd          systemd-analyze
#   prometheus       promtool
#   jq               reads the Grafana dashboard
#   curl             scrapes /metrics
#   netcat-openbsd   nc -N, sends iproto requests
#   apt-get install -y systemd prometheus jq curl netcat-openbsd
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

usage() { echo "usage: $0 PATH_TO_IPROTOD" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
[[ -x $1 && -f $1 ]] || { echo "$0: $1 is not an executable file" >&2; exit 2; }
iprotod=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
deploy=$(cd "$(dirname "$0")" && pwd)

missing=()
for tool in systemd-analyze promtool jq curl nc timeout od; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "$0: missing ${missing[*]}; run: apt-get install -y systemd prometheus jq curl netcat-openbsd" >&2
    exit 2
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
# dashboard_exprs: every PromQL expression of the dashboard, one per line.
dashboard_exprs() {
    jq -r '.. | objects | select(has("targets")) | .targets[]? | .expr // empty | gsub("\\s+"; " ")' "$dashboard"
}

# ---------------------------------------------------------------- a) systemd

units=$tmp/units
mkdir "$units"
cp "$deploy/systemd/iprotod.socket" "$deploy/systemd/iprotod.service" "$units/"

# rewrite_execstart FILE: point ExecStart= at the binary under test (quoted,
# so a path with spaces works; systemd unquotes it).
rewrite_execstart() {
    local file=$1 line found=0 quoted
    quoted=${iprotod//\\/\\\\}
    quoted=${quoted//\"/\\\"}
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == "ExecStart=/usr/local/bin/iprotod "* ]]; then
            line="ExecStart=\"$quoted\" ${line#ExecStart=/usr/local/bin/iprotod }"
            found=1
        fi
        printf '%s\n' "$line"
    done <"$file" >"$file.new"
    mv "$file.new" "$file"
    [[ $found -eq 1 ]]
}

# run_verify DIR OUT: systemd-analyze verify on both units in DIR; writes
# its output to OUT and the lines that are real problems to OUT.problems.
run_verify() {
    local dir=$1 out=$2 status=0 line
    (cd "$dir" && SYSTEMD_LOG_LEVEL=info SYSTEMD_LOG_COLOR=0 \
        timeout 60 systemd-analyze verify --man=no ./iprotod.socket ./iprotod.service) >"$out" 2>&1 || status=$?
    : >"$out.problems"
    : >"$out.notes"
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        if [[ $line =~ ^([^:]*/)?iprotod\.service(:[0-9]+)?:\ Failed\ to\ parse\ system\ call,\ ignoring:\ [A-Za-z0-9_]+$ ]]; then
            echo "$line (syscall unknown to this libseccomp)" >>"$out.notes"
        elif [[ ! $line =~ iprotod && $line =~ ^([^:[:space:]]*/)?[A-Za-z0-9@._\\-]+\.(service|socket|target|mount|automount|swap|path|timer|slice|scope|device)(:[0-9]+)?:\  ]]; then
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
        dashboard_exprs
        jq -r '.templating.list[]? | select(.type == "query")
               | (.query | if type == "object" then .query else . end) // ""
               | capture("label_values\\((?<m>[^,)]+),").m // empty' "$dashboard"
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

dashboard_metric_names >"$tmp/dashboard-metrics.txt"
if [[ ! -s $tmp/dashboard-metrics.txt ]]; then
    fail "d) dashboard metrics are exported" "found no metric names in $dashboard"
elif [[ $scraped -eq 0 ]]; then
    skip "d) dashboard metrics are exported" "no scrape to compare $(wc -l <"$tmp/dashboard-metrics.txt") names with"
else
    awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$tmp/metrics.txt" | sort -u >"$tmp/families.txt"
    unknown=()
    while IFS= read -r name; do
        family=$name
        if ! grep -qxF "$family" "$tmp/families.txt"; then
            [[ $name =~ ^(.+)_(bucket|sum|count|total)$ ]] && family=${BASH_REMATCH[1]}
            grep -qxF "$family" "$tmp/families.txt" || unknown+=("$name")
        fi
    done <"$tmp/dashboard-metrics.txt"
    if [[ ${#unknown[@]} -eq 0 ]]; then
        ok "d) dashboard metrics are exported ($(wc -l <"$tmp/dashboard-metrics.txt") names, all in the scrape)"
    else
        fail "d) dashboard metrics are exported" "not among the scraped families (# TYPE lines): ${unknown[*]}"
    fi
fi

# --------------------------------------------------------------- e) dashboard

dashboard_ok=1
if ! jq empty "$dashboard" 2>"$tmp/jq.err"; then
    fail "e) grafana/iprotod.json is valid JSON" "$(cat "$tmp/jq.err")"
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
          | ("reqps", "s", "percentunit", "bytes")
          | select(. as $u | $units | index($u) | not) | "no panel with unit \(.)")
    ' "$dashboard" >"$tmp/dashboard.problems" 2>&1 || echo "jq failed on the dashboard" >>"$tmp/dashboard.problems"
    if [[ -s $tmp/dashboard.problems ]]; then
        mapfile -t problems <"$tmp/dashboard.problems"
        fail "e) grafana/iprotod.json layout, variables and units" "${problems[@]}"
    else
        ok "e) grafana/iprotod.json layout, variables and units ($(jq '[.. | objects | select(has("gridPos"))] | length' "$dashboard") panels)"
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
        done < <(dashboard_exprs)
    } >"$tmp/dashboard-rules.yml"
    if promtool check rules "$tmp/dashboard-rules.yml" >"$tmp/promtool-rules.out" 2>&1; then
        ok "e) every dashboard expression parses as PromQL ($(grep -c 'record:' "$tmp/dashboard-rules.yml") expressions)"
    else
        fail "e) every dashboard expression parses as PromQL" "$(cat "$tmp/promtool-rules.out")"
    fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
