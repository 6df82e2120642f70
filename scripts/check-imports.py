#!/usr/bin/env python3
"""Fails when two modules of src/ import each other (STYLE.md: types live below the modules
that use them). Checked at two levels: top-level modules (src/<name>.rs or src/<name>/) and
single files; a module and its own submodules are not a pair. Test code (`#[cfg(test)]` on)
and comments are left out. Usage: scripts/check-imports.py [SRC_DIR]"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
mods = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if f.endswith(".rs"):
            path = os.path.join(dirpath, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            mods["::".join(parts)] = path


def known(path):
    """The longest module prefix of a `a::b::c` path."""
    parts = [p for p in path.split("::") if p]
    for i in range(len(parts), 0, -1):
        if "::".join(parts[:i]) in mods:
            return "::".join(parts[:i])
    return None


uses = {}
for name, path in mods.items():
    if name in ("lib", "main"):
        continue
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    here = name.split("::")
    targets = set()
    for m in re.finditer(r"\b(?:crate|edge_tl)::([a-z_][a-z0-9_:]*)", text):
        t = known(m.group(1))
        if t:
            targets.add(t)
    for m in re.finditer(r"\b((?:super::)+)([a-z_][a-z0-9_:]*)?", text):
        up = m.group(1).count("super::")
        base = here[: len(here) - up]
        t = known("::".join(base + [(m.group(2) or "").strip(":")]))
        if t:
            targets.add(t)
    uses[name] = targets - {name}


def related(a, b):
    return a.startswith(b + "::") or b.startswith(a + "::")


pairs = set()
for a, targets in uses.items():
    for b in targets:
        if a in uses.get(b, ()) and not related(a, b):
            pairs.add(tuple(sorted((a, b))))
top = {}
for a, targets in uses.items():
    for b in targets:
        ta, tb = a.split("::")[0], b.split("::")[0]
        if ta != tb:
            top.setdefault(ta, set()).add(tb)
for a, targets in top.items():
    for b in targets:
        if a in top.get(b, ()):
            pairs.add(tuple(sorted((a, b))))
for a, b in sorted(pairs):
    print(f"{a} and {b} import each other")
if pairs:
    sys.exit(1)
print(f"no two of {len(mods)} modules import each other")
