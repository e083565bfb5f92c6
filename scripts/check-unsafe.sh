#!/usr/bin/env bash
# Unsafe Swift (raw pointers, Unmanaged, unsafe buffer views) is allowed only in
# each module's named boundary files, listed below and in docs/architecture.md;
# everything else is safe Swift. Prints the offending lines and fails otherwise.
#
#   scripts/check-unsafe.sh
set -euo pipefail
cd "$(dirname "$0")/.."

boundaries=(
    Sources/IProto/Bridge/                          # the C core's callbacks, addresses and msgpuck
    Sources/IProtoClient/Socket.swift               # the client's socket calls
    Sources/IProtoClient/Poller.swift               # and its epoll
    Sources/Durability/DurableFile.swift            # the storage layers' file system calls and ISA-L's CRC-32
    Sources/IProtoPrometheus/EndpointSocket.swift   # the metrics endpoint's socket calls
    Sources/ErasureCoding/ISAL.swift                # Intel ISA-L's Reed-Solomon coding
    Sources/iproto/LineEditor.swift                 # libedit for the REPL
)
pattern='Unsafe[A-Za-z]*Pointer|withUnsafe|Unmanaged|\.baseAddress|\.pointee|unsafeBitCast|assumingMemoryBound|bindMemory'

found=$(grep -rnE "$pattern" Sources --include='*.swift' | grep -vE "^($(IFS='|'; echo "${boundaries[*]}"))" || true)
if [[ -n $found ]]; then
    echo "unsafe Swift outside the boundary files (scripts/check-unsafe.sh lists them):"
    echo "$found"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "unsafe Swift only in the ${#boundaries[@]} boundary files"
echo "1 passed, 0 failed"
