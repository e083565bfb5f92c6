#!/usr/bin/env python3
"""Replaces (or appends) one `## ` section of a Markdown file with a generated one.

    bench/splice_section.py DOC.md SECTION.md

The section is found by SECTION.md's first line (its `## ` heading) and runs to the next
`## ` heading; the rest of DOC.md is kept as it is.
"""
import sys

doc_path, section_path = sys.argv[1:3]
with open(section_path) as f:
    section = f.read().rstrip("\n") + "\n"
heading = section.splitlines()[0]
with open(doc_path) as f:
    lines = f.read().splitlines(keepends=True)
start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
if start is None:
    text = "".join(lines).rstrip("\n") + "\n\n" + section
else:
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    text = "".join(lines[:start]) + section + ("\n" if end < len(lines) else "") + "".join(lines[end:])
with open(doc_path, "w") as f:
    f.write(text)
