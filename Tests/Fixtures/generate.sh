#!/usr/bin/env bash
# Writes every wire fixture in this directory: NAME.bin (the request bytes a
# client sends, possibly several pipelined requests) and NAME.expected (the
# exact reply bytes). Run it from anywhere; it is idempotent.
#
# The expected replies are built from the protocol description, not recorded
# from the server, so the fixtures check the server independently:
#   request  = func_id, body_length, request_id               (u32 LE each) + body
#   response = func_id, body_length, request_id, return_code  (u32 LE each) + body
#   body_length counts the MessagePack body only.
# Each fixture runs against a fresh server (read-write, all 1000 slots empty).
#
# Every helper below prints printf-%b escapes (\xHH and plain ASCII), never raw
# bytes, so NUL bytes survive shell variables; `fixture` turns them into bytes.
set -euo pipefail
cd "$(dirname "$0")"

# Function ids.
RO=0x00010001      # ADM_STORAGE_SWITCH_READONLY     <nil> -> <nil>
RW=0x00010002      # ADM_STORAGE_SWITCH_READWRITE    <nil> -> <nil>
MT=0x00010003      # ADM_STORAGE_SWITCH_MAINTENANCE  <nil> -> <nil>
REPLACE=0x00020001 # STORAGE_REPLACE  <int><string> -> <nil>
READ=0x00020002    # STORAGE_READ     <int> -> <string>

# Return codes.
OK=0 UNKNOWN_FUNCTION=1 MALFORMED=2 BAD_ARGUMENTS=3 OUT_OF_RANGE=4 TOO_LONG=5
BODY_TOO_LARGE=6 READ_ONLY=0x100 MAINTENANCE=0x101

NIL='\xc0'         # MessagePack nil
EMPTY='\xa0'       # MessagePack "" (fixstr of length 0)

# u32 N: N as four little-endian bytes.
u32() {
    local n=$(($1))
    printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255))
}

# nbytes ESCAPES: how many bytes ESCAPES stands for.
nbytes() { local n; n=$(printf '%b' "$1" | wc -c); echo $((n)); }

# rep TEXT N: TEXT repeated N times.
rep() { local i out=""; for ((i = 0; i < $2; i++)); do out+=$1; done; printf '%s' "$out"; }

# str ESCAPES: a MessagePack string holding those bytes, with the shortest header
# (fixstr 0xa0|n below 32, str8 0xd9 n below 256, str16 0xda n n).
str() {
    local n; n=$(nbytes "$1")
    if ((n < 32)); then printf '\\x%02x' $((0xa0 | n))
    elif ((n < 256)); then printf '\\xd9\\x%02x' "$n"
    else printf '\\xda\\x%02x\\x%02x' $((n >> 8)) $((n & 255))
    fi
    printf '%s' "$1"
}

# req FUNC REQUEST_ID BODY: one request, body_length computed from BODY.
req() { printf '%s%s%s%s' "$(u32 "$1")" "$(u32 "$(nbytes "$3")")" "$(u32 "$2")" "$3"; }

# reply FUNC REQUEST_ID RETURN_CODE BODY: one response.
reply() { printf '%s%s%s%s%s' "$(u32 "$1")" "$(u32 "$(nbytes "$4")")" "$(u32 "$2")" "$(u32 "$3")" "$4"; }

# ok FUNC REQUEST_ID [BODY]: a success reply, body nil unless given.
ok() { reply "$1" "$2" "$OK" "${3-$NIL}"; }

# err FUNC REQUEST_ID CODE MESSAGE: an error reply whose body is the message string.
err() { reply "$1" "$2" "$3" "$(str "$4")"; }

# fixture NAME REQUESTS REPLIES: writes NAME.bin and NAME.expected.
fixture() {
    printf '%b' "$2" >"$1.bin"
    printf '%b' "$3" >"$1.expected"
    echo "wrote $1"
}

rm -f ./*.bin ./*.expected

# --- 01: reading a slot never written gives the empty string -----------------
q=$(req $READ 0x11223344 '\x2a')                   # READ 42, request_id bytes 44 33 22 11
a=$(ok $READ 0x11223344 "$EMPTY")
fixture 01_read_empty_slot "$q" "$a"

# --- 02: replace then read, both in one packet --------------------------------
q=$(req $REPLACE 1 "\\x07$(str hello)")             # REPLACE 7 "hello"
q+=$(req $READ 2 '\x07')                           # READ 7
a=$(ok $REPLACE 1)
a+=$(ok $READ 2 "$(str hello)")
fixture 02_replace_then_read "$q" "$a"

# --- 03: arguments as one array instead of values back to back ----------------
q=$(req $REPLACE 1 "\\x92\\x0c$(str world)")        # REPLACE [12, "world"]
q+=$(req $READ 2 '\x91\x0c')                       # READ [12]
q+=$(req $READ 3 '\x0c')                           # READ 12
q+=$(req $REPLACE 4 "\\x0d$(str flat)")             # REPLACE 13 "flat"
q+=$(req $READ 5 '\x91\x0d')                       # READ [13]
a=$(ok $REPLACE 1)
a+=$(ok $READ 2 "$(str world)")
a+=$(ok $READ 3 "$(str world)")
a+=$(ok $REPLACE 4)
a+=$(ok $READ 5 "$(str flat)")
fixture 03_array_body_forms "$q" "$a"

# --- 04: the index in every MessagePack integer encoding ----------------------
q=$(req $REPLACE 1 "\\xcc\\x05$(str abc)")          # REPLACE uint8 5 "abc"
q+=$(req $READ 2 '\x05')                           # positive fixint 5
q+=$(req $READ 3 '\xcd\x00\x05')                   # uint16 5
q+=$(req $READ 4 '\xce\x00\x00\x00\x05')           # uint32 5
q+=$(req $READ 5 '\xcf\x00\x00\x00\x00\x00\x00\x00\x05')   # uint64 5
q+=$(req $READ 6 '\xd0\x05')                       # int8 5
q+=$(req $READ 7 '\xd1\x00\x05')                   # int16 5
q+=$(req $READ 8 '\xd2\x00\x00\x00\x05')           # int32 5
q+=$(req $READ 9 '\xd3\x00\x00\x00\x00\x00\x00\x00\x05')   # int64 5
q+=$(req $REPLACE 10 "\\xce\\x00\\x00\\x03\\xe7$(str z)")   # REPLACE uint32 999 "z"
q+=$(req $READ 11 '\xcd\x03\xe7')                  # uint16 999
a=$(ok $REPLACE 1)
for id in 2 3 4 5 6 7 8 9; do a+=$(ok $READ $id "$(str abc)"); done
a+=$(ok $REPLACE 10)
a+=$(ok $READ 11 "$(str z)")
fixture 04_int_index_encodings "$q" "$a"

# --- 05: <nil> bodies: empty, a single nil, an empty array --------------------
q=$(req $RO 1 '')                                  # body_length 0
q+=$(req $REPLACE 2 "\\x01$(str x)")                # rejected: read-only took effect
q+=$(req $MT 3 "$NIL")                             # body c0
q+=$(req $READ 4 '\x01')                           # rejected: maintenance took effect
q+=$(req $RW 5 '\x90')                             # body 90 (empty array)
q+=$(req $REPLACE 6 "\\x01$(str x)")
q+=$(req $RO 7 "$NIL")
q+=$(req $RW 8 '')
q+=$(req $READ 9 '\x01')
a=$(ok $RO 1)
a+=$(err $REPLACE 2 $READ_ONLY "storage is read-only")
a+=$(ok $MT 3)
a+=$(err $READ 4 $MAINTENANCE "storage is in maintenance")
a+=$(ok $RW 5)
a+=$(ok $REPLACE 6)
a+=$(ok $RO 7)
a+=$(ok $RW 8)
a+=$(ok $READ 9 "$(str x)")
fixture 05_nil_body_forms "$q" "$a"

# --- 06: read-only: reads work, replaces fail, back to read-write -------------
q=$(req $REPLACE 1 "\\x03$(str before)")
q+=$(req $RO 2 "$NIL")
q+=$(req $READ 3 '\x03')
q+=$(req $REPLACE 4 "\\x03$(str after)")
q+=$(req $READ 5 '\x03')                           # unchanged
q+=$(req $READ 6 '\x04')                           # empty slot reads fine too
q+=$(req $RO 7 "$NIL")                             # switching to the current state is fine
q+=$(req $RW 8 "$NIL")
q+=$(req $REPLACE 9 "\\x03$(str after)")
q+=$(req $READ 10 '\x03')
a=$(ok $REPLACE 1)
a+=$(ok $RO 2)
a+=$(ok $READ 3 "$(str before)")
a+=$(err $REPLACE 4 $READ_ONLY "storage is read-only")
a+=$(ok $READ 5 "$(str before)")
a+=$(ok $READ 6 "$EMPTY")
a+=$(ok $RO 7)
a+=$(ok $RW 8)
a+=$(ok $REPLACE 9)
a+=$(ok $READ 10 "$(str after)")
fixture 06_read_only_state "$q" "$a"

# --- 07: maintenance: reads and replaces fail; every switch still works -------
q=$(req $REPLACE 1 "\\x03$(str kept)")
q+=$(req $MT 2 "$NIL")
q+=$(req $READ 3 '\x03')
q+=$(req $REPLACE 4 "\\x03$(str lost)")
q+=$(req $MT 5 "$NIL")
q+=$(req $RO 6 "$NIL")                             # maintenance -> read-only
q+=$(req $READ 7 '\x03')
q+=$(req $MT 8 "$NIL")                             # read-only -> maintenance
q+=$(req $RW 9 "$NIL")                             # maintenance -> read-write
q+=$(req $READ 10 '\x03')
q+=$(req $REPLACE 11 "\\x03$(str new)")
q+=$(req $READ 12 '\x03')
a=$(ok $REPLACE 1)
a+=$(ok $MT 2)
a+=$(err $READ 3 $MAINTENANCE "storage is in maintenance")
a+=$(err $REPLACE 4 $MAINTENANCE "storage is in maintenance")
a+=$(ok $MT 5)
a+=$(ok $RO 6)
a+=$(ok $READ 7 "$(str kept)")
a+=$(ok $MT 8)
a+=$(ok $RW 9)
a+=$(ok $READ 10 "$(str kept)")
a+=$(ok $REPLACE 11)
a+=$(ok $READ 12 "$(str new)")
fixture 07_maintenance_state "$q" "$a"

# --- 08: unknown func_id (code 1); the connection stays usable ----------------
q=$(req 0x00030001 0x12345678 "$NIL")
q+=$(req 0x00000000 2 '')
q+=$(req 0xffffffff 3 '\x05')
q+=$(req $READ 4 '\x05')
a=$(err 0x00030001 0x12345678 $UNKNOWN_FUNCTION "unknown function 0x00030001")
a+=$(err 0x00000000 2 $UNKNOWN_FUNCTION "unknown function 0x00000000")
a+=$(err 0xffffffff 3 $UNKNOWN_FUNCTION "unknown function 0xffffffff")
a+=$(ok $READ 4 "$EMPTY")
fixture 08_unknown_function "$q" "$a"

# --- 09: body that is not valid MessagePack (code 2); nothing is executed -----
q=$(req $READ 1 '\xc1')                            # 0xc1 never starts a value
q+=$(req $REPLACE 2 '\x05\xa5hi')                  # str of 5 with only 2 bytes
q+=$(req $REPLACE 3 "\\x05$(str x)\\xc1")           # valid arguments, then garbage
q+=$(req $READ 4 '\x05')
a=$(err $READ 1 $MALFORMED "malformed MessagePack body: invalid MessagePack byte 0xc1")
a+=$(err $REPLACE 2 $MALFORMED "malformed MessagePack body: truncated MessagePack value")
a+=$(err $REPLACE 3 $MALFORMED "malformed MessagePack body: invalid MessagePack byte 0xc1")
a+=$(ok $READ 4 "$EMPTY")
fixture 09_malformed_body "$q" "$a"

# --- 10: valid MessagePack, wrong argument count or types (code 3) ------------
q=$(req $READ 1 '')                                # no argument
q+=$(req $REPLACE 2 '\x05')                        # one of two
q+=$(req $READ 3 "$(str 5)")                       # index as a string
q+=$(req $REPLACE 4 "$(str x)\\x05")                # arguments swapped
q+=$(req $REPLACE 5 '\x05\x06')                    # value as an integer
q+=$(req $REPLACE 6 '\x05\x80')                    # value as a map (a bin would be taken)
q+=$(req $RO 7 '\x01')                             # switch with an argument
q+=$(req $READ 8 '\x92\x05\x06')                   # array of 2 for a 1-argument call
q+=$(req $READ 9 '\x05')                           # nothing was written
a=$(err $READ 1 $BAD_ARGUMENTS "expected 1 argument, got 0 values")
a+=$(err $REPLACE 2 $BAD_ARGUMENTS "expected 2 arguments, got 1 value")
a+=$(err $READ 3 $BAD_ARGUMENTS "argument 1: expected integer, got string")
a+=$(err $REPLACE 4 $BAD_ARGUMENTS "argument 1: expected integer, got string")
a+=$(err $REPLACE 5 $BAD_ARGUMENTS "argument 2: expected string, got integer")
a+=$(err $REPLACE 6 $BAD_ARGUMENTS "argument 2: expected string, got map")
a+=$(err $RO 7 $BAD_ARGUMENTS "expected 0 arguments, got 1 value")
a+=$(err $READ 8 $BAD_ARGUMENTS "argument 1: expected integer, got array")
a+=$(ok $READ 9 "$EMPTY")
fixture 10_bad_arguments "$q" "$a"

# --- 11: trailing values after the arguments (code 3, never half-executed) ----
q=$(req $READ 1 '\x05\xc0')
q+=$(req $REPLACE 2 "\\x05$(str x)\\xc0")
q+=$(req $RW 3 '\xc0\xc0')
q+=$(req $READ 4 '\x05')
a=$(err $READ 1 $BAD_ARGUMENTS "expected 1 argument, got 2 values")
a+=$(err $REPLACE 2 $BAD_ARGUMENTS "expected 2 arguments, got 3 values")
a+=$(err $RW 3 $BAD_ARGUMENTS "expected 0 arguments, got 2 values")
a+=$(ok $READ 4 "$EMPTY")
fixture 11_trailing_values "$q" "$a"

# --- 12: index bounds: 0 and 999 work; 1000 and negatives are code 4 ----------
q=$(req $REPLACE 1 "\\xcd\\x03\\xe7$(str last)")    # 999
q+=$(req $READ 2 '\xcd\x03\xe7')
q+=$(req $REPLACE 3 "\\x00$(str first)")            # 0
q+=$(req $READ 4 '\x00')
q+=$(req $READ 5 '\xcd\x03\xe8')                   # 1000
q+=$(req $REPLACE 6 "\\xcd\\x03\\xe8$(str x)")
q+=$(req $READ 7 '\xff')                           # negative fixint -1
q+=$(req $REPLACE 8 "\\xff$(str x)")
q+=$(req $READ 9 '\xd3\xff\xff\xff\xff\xff\xff\xff\xff')   # int64 -1
q+=$(req $READ 10 '\xd2\x80\x00\x00\x00')          # int32 -2147483648
q+=$(req $READ 11 '\xcd\xff\xff')                  # uint16 65535
a=$(ok $REPLACE 1)
a+=$(ok $READ 2 "$(str last)")
a+=$(ok $REPLACE 3)
a+=$(ok $READ 4 "$(str first)")
a+=$(err $READ 5 $OUT_OF_RANGE "index 1000 is out of range 0...999")
a+=$(err $REPLACE 6 $OUT_OF_RANGE "index 1000 is out of range 0...999")
a+=$(err $READ 7 $OUT_OF_RANGE "index -1 is out of range 0...999")
a+=$(err $REPLACE 8 $OUT_OF_RANGE "index -1 is out of range 0...999")
a+=$(err $READ 9 $OUT_OF_RANGE "index -1 is out of range 0...999")
a+=$(err $READ 10 $OUT_OF_RANGE "index -2147483648 is out of range 0...999")
a+=$(err $READ 11 $OUT_OF_RANGE "index 65535 is out of range 0...999")
fixture 12_index_bounds "$q" "$a"

# --- 13: value length: 256 bytes fit, 257 are code 5 --------------------------
v255=$(rep b 255) v256=$(rep a 256) v257=$(rep c 257)
q=$(req $REPLACE 1 "\\x01\\xda\\x01\\x00$v256")      # str16, 256 bytes
q+=$(req $READ 2 '\x01')
q+=$(req $REPLACE 3 "\\x01\\xda\\x01\\x01$v257")    # str16, 257 bytes
q+=$(req $READ 4 '\x01')                           # still the 256 bytes
q+=$(req $REPLACE 5 "\\x02\\xd9\\xff$v255")         # str8, 255 bytes
q+=$(req $READ 6 '\x02')
q+=$(req $REPLACE 7 "\\x03\\xdb\\x00\\x00\\x01\\x00$v256")  # str32 header, 256 bytes
q+=$(req $READ 8 '\x03')                           # answered with the shortest header
q+=$(req $REPLACE 9 "\\x01$EMPTY")                  # the empty string
q+=$(req $READ 10 '\x01')
a=$(ok $REPLACE 1)
a+=$(ok $READ 2 "\\xda\\x01\\x00$v256")
a+=$(err $REPLACE 3 $TOO_LONG "value of 257 bytes exceeds 256 bytes")
a+=$(ok $READ 4 "\\xda\\x01\\x00$v256")
a+=$(ok $REPLACE 5)
a+=$(ok $READ 6 "\\xd9\\xff$v255")
a+=$(ok $REPLACE 7)
a+=$(ok $READ 8 "\\xda\\x01\\x00$v256")
a+=$(ok $REPLACE 9)
a+=$(ok $READ 10 "$EMPTY")
fixture 13_value_length "$q" "$a"

# --- 14: UTF-8: the limit counts bytes, not characters ------------------------
e_acute='\xc3\xa9' euro='\xe2\x82\xac' privet='\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82'
v128e=$(rep "$e_acute" 128)                        # 128 characters, 256 bytes
v86=$(rep "$euro" 85)$e_acute                      # 86 characters, 257 bytes
q=$(req $REPLACE 1 "\\x0a$(str "$privet")")         # "привет": 6 characters, 12 bytes
q+=$(req $READ 2 '\x0a')
q+=$(req $REPLACE 3 "\\x0b$(str "$v128e")")
q+=$(req $READ 4 '\x0b')
q+=$(req $REPLACE 5 "\\x0c$(str "$v86")")
q+=$(req $READ 6 '\x0c')
a=$(ok $REPLACE 1)
a+=$(ok $READ 2 '\xac'"$privet")
a+=$(ok $REPLACE 3)
a+=$(ok $READ 4 "\\xda\\x01\\x00$v128e")
a+=$(err $REPLACE 5 $TOO_LONG "value of 257 bytes exceeds 256 bytes")
a+=$(ok $READ 6 "$EMPTY")
fixture 14_utf8_value "$q" "$a"

# --- 15: body_length 0xffffffff: code 6 echoing the ids, then the server closes
q=$(req $READ 1 '\x05')                            # answered first
q+="$(u32 $READ)$(u32 0xffffffff)$(u32 0xdeadbeef)" # header only
a=$(ok $READ 1 "$EMPTY")
a+=$(err $READ 0xdeadbeef $BODY_TOO_LARGE "body_length 4294967295 exceeds the limit of 65536 bytes")
fixture 15_body_length_4gib "$q" "$a"

# --- 16: body_length one past the default limit of 65536 ----------------------
q="$(u32 $REPLACE)$(u32 65537)$(u32 9)"              # header only
a=$(err $REPLACE 9 $BODY_TOO_LARGE "body_length 65537 exceeds the limit of 65536 bytes")
fixture 16_body_length_limit "$q" "$a"

# --- 17: a float index is a bad argument, even when integral ------------------
q=$(req $READ 1 '\xca\x40\xa0\x00\x00')            # float32 5.0
q+=$(req $READ 2 '\xcb\x40\x14\x00\x00\x00\x00\x00\x00')   # float64 5.0
q+=$(req $REPLACE 3 "\\xcb\\x40\\x14\\x00\\x00\\x00\\x00\\x00\\x00$(str x)")
q+=$(req $READ 4 '\x05')
a=$(err $READ 1 $BAD_ARGUMENTS "argument 1: expected integer, got float")
a+=$(err $READ 2 $BAD_ARGUMENTS "argument 1: expected integer, got float")
a+=$(err $REPLACE 3 $BAD_ARGUMENTS "argument 1: expected integer, got float")
a+=$(ok $READ 4 "$EMPTY")
fixture 17_float_index "$q" "$a"

# --- 18: 40 pipelined requests in one write, answered in order ----------------
q="" a=""
for i in $(seq 0 19); do
    q+=$(req $REPLACE $((100 + i)) "\\x$(printf %02x $((i * 5)))$(str "v$i")")   # REPLACE 5i "v<i>"
    a+=$(ok $REPLACE $((100 + i)))
done
for i in $(seq 19 -1 0); do
    q+=$(req $READ $((200 + i)) "\\x$(printf %02x $((i * 5)))")
    a+=$(ok $READ $((200 + i)) "$(str "v$i")")
done
fixture 18_pipelined_many "$q" "$a"

# --- 19: fuzz regression: one reply fills max_output, nothing left unparsed --
# fuzz/core.c replays this with settings 08000000 (max_output 1 byte): the
# core then resumed parsing an input stash it had never allocated and called
# memmove on NULL (undefined behaviour). iprotod answers it plainly.
q=$(req $READ 1 '\x05')
a=$(ok $READ 1 "$EMPTY")
fixture 19_output_cap_empty_stash_core_08000000 "$q" "$a"
