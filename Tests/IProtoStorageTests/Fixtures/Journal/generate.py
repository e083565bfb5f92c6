#!/usr/bin/env python3
"""Writes the damaged data directories that JournalFixtureTests opens.

    python3 Tests/IProtoStorageTests/Fixtures/Journal/generate.py

Each case is a folder holding a data directory (`data/`) as iprotod would have
left it, with one kind of damage, and `expected.json`: what opening it must do
without and with --force-recovery. The format is the one drawn in
Sources/IProtoStorage/Journal/JournalFormat.swift. The history is always the
same: LSN 1 sets the state to read-write, LSNs 2...101 store "value <i>" in
slot i (i = 0...99), so slot i holds change i + 2.
"""
import json
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"IPWAL001"


def record(lsn, payload):
    body = struct.pack("<Q", lsn) + payload
    return struct.pack("<II", len(payload), zlib.crc32(body)) + body


def change(lsn):
    if lsn == 1:
        return record(1, bytes([2, 0]))
    slot = lsn - 2
    value = f"value {slot}".encode()
    return record(lsn, struct.pack("<BHH", 1, slot, len(value)) + value)


def segment(first, last):
    """The segment's bytes and the offset of each record in it, by LSN."""
    data, offsets = bytearray(MAGIC), {}
    for lsn in range(first, last + 1):
        offsets[lsn] = len(data)
        data += change(lsn)
    return data, offsets


def snapshot(upto):
    slots = [b""] * 1000
    for lsn in range(2, upto + 1):
        slots[lsn - 2] = f"value {lsn - 2}".encode()
    data = bytearray(b"IPSNAP01" + struct.pack("<QB", upto, 0))
    for value in slots:
        data += struct.pack("<H", len(value)) + value
    return data + struct.pack("<I", zlib.crc32(data))


def name(first):
    return f"wal-{first:020d}.log"


def slots_through(last_lsn):
    """The slots a recovery up to `last_lsn` holds."""
    return {str(lsn - 2): f"value {lsn - 2}" for lsn in range(2, last_lsn + 1)}


def write(case, files, expected):
    folder = os.path.join(HERE, case)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "data"))
    for file_name, data in files.items():
        with open(os.path.join(folder, "data", file_name), "wb") as f:
            f.write(bytes(data))
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    # A crash cut the last write short: truncated, nothing acknowledged is lost.
    data, offsets = segment(1, 101)
    cut = offsets[101] + 20
    write("torn-tail", {name(1): data[:cut]}, {
        "starts": True, "last_lsn": 100, "truncated_bytes": cut - offsets[101],
        "warning": f"ends with a partial record at byte {offsets[101]}, and no valid change follows",
        "slots": slots_through(100),
    })

    # The issue's reproduction: one bit of change 51's value flipped, 50 valid changes after it.
    data, offsets = segment(1, 101)
    data[offsets[51] + 16 + 5] ^= 0x01
    write("bit-flip-mid-segment", {name(1): data}, {
        "starts": False,
        "error": f"wal-00000000000000000001.log is damaged at byte {offsets[51]} (a record whose checksum does not match), and valid change 52 follows at byte {offsets[52]}",
        "force": {"last_lsn": 50, "slots": slots_through(50),
                  "moved": [f"{name(1)}.from-byte-{offsets[51]}"]},
    })

    # The last record damaged: indistinguishable from a torn write, so truncated.
    data, offsets = segment(1, 101)
    data[len(data) - 1] ^= 0x80
    write("bit-flip-last-record", {name(1): data}, {
        "starts": True, "last_lsn": 100, "truncated_bytes": len(data) - offsets[101],
        "warning": f"ends with a record whose checksum does not match at byte {offsets[101]}, and no valid change follows",
        "slots": slots_through(100),
    })

    # A 4 KiB page of zeros in the middle of the log (a lost write-back).
    data, offsets = segment(1, 400)
    page = 4096
    data[page:2 * page] = bytes(page)
    first_hit = min(lsn for lsn, offset in offsets.items() if offset + len(change(lsn)) > page)
    after = min(lsn for lsn, offset in offsets.items() if offset >= 2 * page)
    write("zeroed-page", {name(1): data}, {
        "starts": False,
        "error": f"is damaged at byte {offsets[first_hit]} (a record whose checksum does not match), and valid change {after} follows at byte {offsets[after]}",
        "force": {"last_lsn": first_hit - 1, "slots": slots_through(first_hit - 1),
                  "moved": [f"{name(1)}.from-byte-{offsets[first_hit]}"]},
    })

    # Zeros at the end of the log (space allocated, data never written): a torn tail.
    data, offsets = segment(1, 101)
    write("zeroed-tail", {name(1): data + bytes(4096)}, {
        "starts": True, "last_lsn": 101, "truncated_bytes": 4096,
        "warning": f"ends with a record whose checksum does not match at byte {len(data)}, and no valid change follows",
        "slots": slots_through(101),
    })

    # A whole, valid record with the wrong LSN at the end: something wrote it, so not a torn write.
    data, offsets = segment(1, 100)
    data += change(102)
    write("out-of-order-record", {name(1): data}, {
        "starts": False,
        "error": f"holds change 102 at byte {len(data) - len(change(102))} where 101 was expected",
        "force": {"last_lsn": 100, "slots": slots_through(100),
                  "moved": [f"{name(1)}.from-byte-{len(data) - len(change(102))}"]},
    })

    # A whole segment gone between two others.
    first, _ = segment(1, 40)
    third, _ = segment(81, 101)
    write("missing-segment", {name(1): first, name(81): third}, {
        "starts": False,
        "error": "the log has no changes 41...80: a segment before",
        "force": {"last_lsn": 40, "slots": slots_through(40), "moved": [name(81)]},
    })

    # Damage at the end of a segment that later segments follow: not a crash leftover.
    first, offsets = segment(1, 50)
    first[len(first) - 1] ^= 0x01
    second, _ = segment(51, 101)
    write("damage-before-later-segment", {name(1): first, name(51): second}, {
        "starts": False,
        "error": f"is damaged at byte {offsets[50]} (a record whose checksum does not match), and later segments follow it, from {name(51)}",
        "force": {"last_lsn": 49, "slots": slots_through(49),
                  "moved": [f"{name(1)}.from-byte-{offsets[50]}", name(51)]},
    })

    # A damaged snapshot: the changes it held are in no log. Forced, history starts over.
    snap = snapshot(50)
    snap[40] ^= 0x01
    second, _ = segment(51, 101)
    write("damaged-snapshot", {"snapshot": snap, name(51): second}, {
        "starts": False,
        "error": "snapshot is damaged (its checksum does not match)",
        "force": {"last_lsn": 0, "slots": {}, "moved": ["snapshot", name(51)]},
    })


if __name__ == "__main__":
    main()
