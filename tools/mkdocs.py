#!/usr/bin/env python3
"""`make docs`: runs every command of docs/tutorial.md and writes its output under it.

A command is a ```console block that follows a `<!-- run -->` line; its first line is
`$ COMMAND`, run by the shell from the repository's top folder with the virtual
environment's bin folder first on PATH (so `goruntime` and `python` are the project's).
Everything after that line is replaced by the command's output.

    tools/mkdocs.py            # rewrite docs/tutorial.md
    tools/mkdocs.py --check    # run every command; fail if one fails (what the tests do)
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"(<!-- run -->\n```console\n\$ (?P<cmd>[^\n]+)\n)(?P<out>.*?)(```)", re.S)


def commands(text):
    """The commands of a tutorial text, in order."""
    return [m.group("cmd") for m in BLOCK.finditer(text)]


def run(command, timeout=300):
    """Runs one tutorial command as a reader would; returns (exit status, output)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="100")
    p = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def render(text):
    """The tutorial with every command's output written under it; raises on a failing command."""
    def fill(m):
        code, out = run(m.group("cmd"))
        if code != 0:
            raise RuntimeError(f"`{m.group('cmd')}` exited {code}:\n{out}")
        return m.group(1) + out.rstrip("\n") + "\n" + m.group(4)
    return BLOCK.sub(fill, text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run the commands, change nothing")
    args = ap.parse_args(argv)
    text = TUTORIAL.read_text()
    if args.check:
        for cmd in commands(text):
            code, out = run(cmd)
            print(f"{'ok  ' if code == 0 else 'FAIL'} {cmd}")
            if code:
                print(out)
                return 1
        return 0
    TUTORIAL.write_text(render(text))
    print(f"mkdocs: {len(commands(text))} commands run, {TUTORIAL.relative_to(ROOT)} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
