#!/usr/bin/env python3
"""Checks the project's Markdown: every relative link and anchor in every tracked .md file
resolves, and every `make TARGET` in the README's quick start is a Makefile target.

    tools/check_docs.py [SOURCE_DIR]

Prints each broken link as FILE:LINE: TARGET (why), and exits 1 if there is any."""
import os
import re
import subprocess
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__) + "/..")
os.chdir(root)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def prose(path):
    """(line number, text) of each line outside fenced code, inline code blanked out."""
    fence = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if not fence:
                yield n, re.sub(r"`[^`]*`", "``", line)


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        found, counts = set(), {}
        fence = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fence = not fence
                elif not fence and line.startswith("#"):
                    a = slug(line.lstrip("#"))
                    k = counts.get(a, 0)
                    found.add(a if k == 0 else f"{a}-{k}")
                    counts[a] = k + 1
        cache[path] = found
    return cache[path]


def tracked_markdown():
    """The .md files git tracks, or, outside a git checkout, those of the tree but builds."""
    git = subprocess.run(["git", "ls-files", "*.md"], capture_output=True, text=True)
    if git.returncode == 0 and git.stdout:
        return git.stdout.split()
    found = []
    for d, dirs, names in os.walk("."):
        dirs[:] = [x for x in dirs if not x.startswith(("build", "."))]
        found += [os.path.normpath(os.path.join(d, n)) for n in names if n.endswith(".md")]
    return found


def broken_links():
    files = tracked_markdown()
    for md in files:
        for n, line in prose(md):
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
                if not os.path.exists(dest):
                    yield f"{md}:{n}: {target} (no such file)"
                elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                    yield f"{md}:{n}: {target} (no heading '{anchor}' in {dest})"


def missing_make_targets():
    readme = open("README.md", encoding="utf-8").read()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    make = subprocess.run(["make", "-pn", "-f", "Makefile"], capture_output=True, text=True).stdout
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", make, flags=re.M))
    for target in sorted(set(re.findall(r"`make ([A-Za-z0-9_.-]+)`|^make ([A-Za-z0-9_.-]+)", quick,
                                        flags=re.M))):
        t = target[0] or target[1]
        if t not in targets:
            yield f"README.md: quick start: `make {t}` is no target of the Makefile"


problems = list(broken_links()) + list(missing_make_targets())
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
