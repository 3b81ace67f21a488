#!/usr/bin/env python3
"""Figures of a spec suite, to see what the language's reuse saves.

    python3 scripts/spec_stats.py [specs/]      # needs PyYAML (pip install pyyaml)

Prints:
- lines: every line of every YAML file under the folder (specs, library steps and
  suite configs alike: reuse that moves lines elsewhere saves nothing);
- connect blocks: places where a connection is opened, authenticated and awaited
  by hand — a `connect` step with `authenticate` in a file that also expects
  `connection_established` — plus connection profiles that do the same;
- hand-written teardown: spec files with a non-empty `teardown:`;
- longest enumerated sequence: the most items written out in one `sequence:` list.
"""

import pathlib
import sys

import yaml


def walk_steps(steps):
    """Every step, including those nested in `each`."""
    for step in steps or []:
        if not isinstance(step, dict) or not step:
            continue
        kind, body = next(iter(step.items()))
        yield kind, body
        if kind == "each" and isinstance(body, dict):
            yield from walk_steps(body.get("steps"))


def by_text(text):
    """A rough document for a file PyYAML refuses: teardown, connects, sequences."""
    lines = text.splitlines()
    steps = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("- connect:"):
            indent = len(line) - len(line.lstrip())
            block = [stripped] + [
                l for l in lines[i + 1 :]
                if l.strip() and len(l) - len(l.lstrip()) > indent
            ]
            steps.append({"connect": {"authenticate": 1} if any("authenticate" in b for b in block[:12]) else {}})
        if stripped == "sequence:":
            indent = len(line) - len(line.lstrip())
            items = 0
            for l in lines[i + 1 :]:
                if not l.strip():
                    continue
                if len(l) - len(l.lstrip()) <= indent:
                    break
                if l.strip().startswith("- "):
                    items += 1
            steps.append({"expect": {"sequence": [None] * items}})
    teardown = any(l.startswith("teardown:") for l in lines)
    return {"steps": steps, "teardown": [1] if teardown else None}


def figures(root):
    lines = 0
    connect_places = []
    teardown_files = []
    longest = (0, None)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in files:
        text = path.read_text()
        lines += len(text.splitlines())
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            # PyYAML is stricter than the engine's parser in a few flow forms
            # (`content: what? }`); count such a file by its text.
            doc = by_text(text)
        if not isinstance(doc, dict):
            continue
        if path.name == "engine.yaml":
            for name, profile in (doc.get("profiles") or {}).items():
                if isinstance(profile, dict) and "authenticate" in profile:
                    connect_places.append(f"{path}: profile {name}")
            continue
        steps = list(walk_steps(doc.get("steps")))
        hand_connect = any(
            kind == "connect" and isinstance(body, dict) and "authenticate" in body
            for kind, body in steps
        )
        awaits_ready = "connection_established" in text
        if hand_connect and awaits_ready:
            connect_places.append(str(path))
        if doc.get("teardown"):
            teardown_files.append(str(path))
        for kind, body in steps:
            if kind == "expect" and isinstance(body, dict):
                sequence = body.get("sequence")
                if isinstance(sequence, list) and len(sequence) > longest[0]:
                    longest = (len(sequence), str(path))
    return {
        "files": len(files),
        "lines": lines,
        "connect_places": connect_places,
        "teardown_files": teardown_files,
        "longest_sequence": longest,
    }


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "specs")
    f = figures(root)
    print(f"YAML files:                    {f['files']}")
    print(f"lines:                         {f['lines']}")
    print(f"hand-written connect blocks:   {len(f['connect_places'])}")
    print(f"files with their own teardown: {len(f['teardown_files'])}")
    n, where = f["longest_sequence"]
    print(f"longest enumerated sequence:   {n}" + (f" ({where})" if where else ""))
    if "-v" in sys.argv:
        for place in f["connect_places"]:
            print(f"  connect: {place}")
        for place in f["teardown_files"]:
            print(f"  teardown: {place}")


if __name__ == "__main__":
    main()
