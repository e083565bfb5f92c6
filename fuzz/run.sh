#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each in turn for a bounded time (fuzz/README.md).
#
#   fuzz/run.sh [core|arguments]...    default: both, one after the other
#
# FUZZ_SECONDS   seconds per target (default 60)
# FUZZ_FLAGS     more libFuzzer flags, e.g. "-max_len=16384"
#
# Seeds come from Tests/Fixtures/*.bin at run time; the corpus grows in
# fuzz/corpus/TARGET (ignored by git). A crash, sanitizer report, leak or hang
# is copied into Tests/Fixtures as NN_fuzz_TARGET_*.bin (the client's bytes; its
# .expected is yours to write from the protocol) and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build=.build-fuzz
targets=("$@")
((${#targets[@]})) || targets=(core arguments)

build_core() {
    local linker=()
    command -v ld.lld >/dev/null && linker=(-fuse-ld=lld)  # gold warns about every ASan symbol
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined "${linker[@]}" \
        -I Sources/CIProtoCore -I Sources/CIProtoCore/include \
        fuzz/core.c Sources/CIProtoCore/*.c -lev -lmsgpuck -lpthread -o "$build/fuzz-core"
}

build_arguments() {
    local libfuzzer
    libfuzzer=$(clang -print-file-name="libclang_rt.fuzzer_no_main-$(uname -m).a")
    if [[ ! -f $libfuzzer ]]; then
        echo "$0: clang has no libFuzzer runtime ($libfuzzer)" >&2
        exit 2
    fi
    # Not --sanitize=fuzzer: that links libFuzzer's main into every executable,
    # the code generator the build runs included. So: AddressSanitizer, the
    # coverage libFuzzer reads, and the target's own main (fuzz/arguments/main.swift).
    local flags=(--scratch-path "$build" -c release --sanitize=address
        -Xswiftc "-sanitize-coverage=edge,trace-cmp,indirect-calls,inline-8bit-counters,pc-table"
        -Xswiftc -enable-testing)
    IPROTO_FUZZ=$libfuzzer swift build "${flags[@]}" --product iproto-fuzz-arguments
    ln -sf "$(IPROTO_FUZZ=$libfuzzer swift build "${flags[@]}" --show-bin-path)/iproto-fuzz-arguments" \
        "$build/fuzz-arguments"
}

# The core target's input starts with 4 settings bytes (fuzz/core.c): zeros, or
# the 8 hex digits after "core_" in the fixture's name.
seed() {
    local target=$1 dir=$build/seeds/$1 bin name settings
    rm -rf "$dir"
    mkdir -p "$dir"
    for bin in Tests/Fixtures/*.bin; do
        name=$(basename "$bin")
        if [[ $target == core ]]; then
            settings=00000000
            [[ $name =~ core_([0-9a-f]{8}) ]] && settings=${BASH_REMATCH[1]}
            { printf '%b' "\\x${settings:0:2}\\x${settings:2:2}\\x${settings:4:2}\\x${settings:6:2}"; cat "$bin"; } >"$dir/$name"
        else
            cp "$bin" "$dir/$name"
        fi
    done
}

# Copies a crasher into Tests/Fixtures under the next free number.
keep() {
    local target=$1 artifact=$2 last name
    last=$(basename -a Tests/Fixtures/*.bin | sed -n 's/^\([0-9][0-9]*\)_.*/\1/p' | sort -n | tail -1)
    name=$(printf '%02d' $((10#${last:-0} + 1)))_fuzz_$target
    if [[ $target == core ]]; then
        name+=_$(od -An -tx1 -N4 "$artifact" | tr -d ' \n')
        tail -c +5 "$artifact" >"Tests/Fixtures/$name.bin"
    else
        name+=_$(sha1sum <"$artifact" | cut -c1-8)
        cp "$artifact" "Tests/Fixtures/$name.bin"
    fi
    echo "kept $artifact as Tests/Fixtures/$name.bin; write its expected reply in generate.sh (fuzz/README.md)"
}

mkdir -p "$build"
failed=0
for target in "${targets[@]}"; do
    case $target in
        core) build_core ;;
        arguments) build_arguments ;;
        *) echo "usage: $0 [core|arguments]..." >&2; exit 2 ;;
    esac
    seed "$target"
    crashes=$build/crashes/$target
    log=$build/fuzz-$target.log
    rm -rf "$crashes"
    mkdir -p "$crashes" "fuzz/corpus/$target"
    echo "fuzzing $target for ${seconds}s (log: $log)"
    flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/")
    [[ -f fuzz/$target.dict ]] && flags+=(-dict="fuzz/$target.dict")
    status=0
    # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
    "$build/fuzz-$target" "fuzz/corpus/$target" "$build/seeds/$target" "${flags[@]}" ${FUZZ_FLAGS:-} >"$log" 2>&1 ||
        status=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
    shopt -s nullglob
    artifacts=("$crashes"/*)
    shopt -u nullglob
    if ((status != 0 || ${#artifacts[@]} > 0)); then
        tail -n 40 "$log"
        for artifact in "${artifacts[@]}"; do keep "$target" "$artifact"; done
        echo "FAIL $target (libFuzzer exited with $status)"
        failed=1
    else
        echo "ok $target"
    fi
done
exit $failed
