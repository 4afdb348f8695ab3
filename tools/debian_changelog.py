#!/usr/bin/env python3
"""The Debian packages' changelogs, made from CHANGELOG.md (the one changelog the project keeps).

    tools/debian_changelog.py CHANGELOG.md VERSION RELEASE MAINTAINER OUTDIR

writes OUTDIR/changelog.gz (CHANGELOG.md as it is: what a user reads) and
OUTDIR/changelog.Debian.gz (one entry per version of CHANGELOG.md, newest first, in the format
of deb-changelog(5), pointing to changelog.gz for the details). Both are compressed as
dh_compress would (gzip -9n: no name, no time stamp), dated SOURCE_DATE_EPOCH, else the last
commit's time, so that the same tree makes the same packages. Fails when CHANGELOG.md's newest
version is not VERSION: the packages and the changelog cannot drift apart.
"""
import datetime
import email.utils
import gzip
import os
import re
import subprocess
import sys
import textwrap

HEADING = re.compile(r"^## (\d+\.\d+\.\d+)(?: \((.*)\))?\s*$")


def sections(text):
    """(version, note, first paragraph) for each '## X.Y.Z' section, in file order."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = HEADING.match(line)
        if not m:
            continue
        paragraph = []
        for body in lines[i + 1:]:
            if body.startswith("## "):
                break
            if not body.strip():
                if paragraph:
                    break
                continue
            paragraph.append(body.strip())
        out.append((m.group(1), m.group(2) or "", " ".join(paragraph)))
    return out


def plain(markdown):
    """Markdown's emphasis and code marks off: the Debian changelog is plain text."""
    return re.sub(r"\*\*|`", "", markdown)


def timestamp(source_dir):
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", source_dir, "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return int(os.path.getmtime(os.path.join(source_dir, "CHANGELOG.md")))


def entry(version, release, note, summary, maintainer, date):
    distribution = "UNRELEASED" if note.lower() == "unreleased" else "unstable"
    items = [f"shmfd {version}" + (f" ({note})" if note else "") + ": " + plain(summary)
             if summary else f"shmfd {version}.",
             "What changed, in full: changelog.gz, beside this file."]
    body = "\n".join(textwrap.fill(item, width=78, initial_indent="  * ",
                                   subsequent_indent="    ") for item in items)
    return (f"shmfd ({version}-{release}) {distribution}; urgency=medium\n\n{body}\n\n"
            f" -- {maintainer}  {date}\n")


def write_gzip(path, data):
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(data)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    changelog, version, release, maintainer, outdir = sys.argv[1:]
    text = open(changelog, encoding="utf-8").read()
    found = sections(text)
    if not found:
        sys.exit(f"{changelog}: no '## X.Y.Z' section")
    if found[0][0] != version:
        sys.exit(f"{changelog}: its newest version is {found[0][0]}, the project's is {version}: "
                 f"add a '## {version}' section first")
    when = timestamp(os.path.dirname(os.path.abspath(changelog)))
    date = email.utils.format_datetime(
        datetime.datetime.fromtimestamp(when, datetime.timezone.utc))  # "..., +0000"
    debian = "\n".join(entry(v, release, note, summary, maintainer, date)
                       for v, note, summary in found)
    os.makedirs(outdir, exist_ok=True)
    write_gzip(os.path.join(outdir, "changelog.Debian.gz"), debian.encode("utf-8"))
    write_gzip(os.path.join(outdir, "changelog.gz"), text.encode("utf-8"))


if __name__ == "__main__":
    main()
