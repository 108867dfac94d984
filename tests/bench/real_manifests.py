"""How real manifests fare: apply each file of tests/fixtures/real-manifests/ and print a table.

Starts a master (`--insecure --no-lb`, port 0, a temporary data dir) from a pinnace
source tree, runs `pinnace apply --dry-run -f FILE` for every file, one at a time,
as a user would, and classifies each file:

- accepted: exit 0 and no warning;
- warned:   exit 0 with warnings (the first warning's reason is shown);
- refused:  exit 1 (the error sentence is shown).

`--namespaces-first` first applies (for real) the files that only declare Namespaces,
as a user creates an application's namespace before the rest (`kubectl apply -f FILE`
of an object in a namespace that does not exist is refused, by Kubernetes and pinnace).

`--source DIR` runs another tree's code (for the "before" count, an export of an
older commit: `git archive abb5ab7 | tar -x -C DIR`), with this interpreter, so
both counts use the same Python and packages. The master is stopped by its PID.

    .venv/bin/python -m tests.bench.real_manifests [--source DIR] [--markdown]
        [--namespaces-first]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "real-manifests"
SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Outcome:
    file: str
    result: str  # accepted | warned | refused
    why: str
    warnings: int


def _short(text: str, file: str) -> str:
    """The reason without the file's path, so the table stays readable."""
    text = text.replace(str(FIXTURES) + os.sep, "")
    text = re.sub(r"^(Warning: |error: )", "", text)
    text = text.removeprefix(file + ": ")
    return text if len(text) <= 150 else text[:147] + "..."


def classify(file: str, returncode: int, stderr: str) -> Outcome:
    lines = [line for line in stderr.splitlines() if line.strip()]
    warnings = [line for line in lines if line.startswith("Warning:")]
    if returncode != 0:
        errors = [line for line in lines if not line.startswith("Warning:")]
        why = errors[0] if errors else f"exit {returncode}"
        return Outcome(file, "refused", _short(why, file), len(warnings))
    if warnings:
        return Outcome(file, "warned", _short(warnings[0], file), len(warnings))
    return Outcome(file, "accepted", "", 0)


def _no_extra_listeners(source: Path) -> list[str]:
    """Flags that keep a tree's master off fixed ports (older trees lack them)."""
    cli = (source / "master" / "cli" / "main.py").read_text()
    flags = ["--metrics-listen", "--api-listen"]
    return [arg for flag in flags if flag in cli for arg in (flag, "")]


def _start_master(source: Path, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "master.cli.main", "master", "--insecure", "--no-lb"),
                *("--listen", "127.0.0.1:0", "--data-dir", str(data_dir)),
                *_no_extra_listeners(source),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=source,
            env=env,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise SystemExit(f"master did not start ({line!r}); its log follows")
    return proc, line.strip().rsplit(" ", 1)[-1]


def _only_namespaces(path: Path) -> bool:
    kinds = re.findall(r"^kind:\s*(\S+)", path.read_text(errors="replace"), re.M)
    return bool(kinds) and set(kinds) == {"Namespace"}


def run(source: Path, namespaces_first: bool = False) -> list[Outcome]:
    files = sorted(p for p in FIXTURES.iterdir() if p.suffix in SUFFIXES)
    work = Path(tempfile.mkdtemp(prefix="pinnace-real-manifests-"))
    try:
        proc, address = _start_master(source, work / "data", work / "master.log")
    except SystemExit:
        print((work / "master.log").read_text(errors="replace")[-2000:], file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        raise
    outcomes = []
    try:
        env = {**os.environ, "PYTHONPATH": str(source)}
        cli = (sys.executable, "-m", "master.cli.main", "--insecure", "--master", address)
        for path in files if namespaces_first else []:
            if _only_namespaces(path):
                # A tree without namespaces refuses it: then the files using it are refused.
                subprocess.run(
                    [*cli, "apply", "-f", str(path)],
                    capture_output=True,
                    cwd=source,
                    env=env,
                    timeout=60,
                )
        for path in files:
            done = subprocess.run(
                [
                    *(sys.executable, "-m", "master.cli.main", "--insecure", "--master", address),
                    *("apply", "--dry-run", "-f", str(path)),
                ],
                capture_output=True,
                text=True,
                cwd=source,
                env=env,
                timeout=60,
            )
            outcomes.append(classify(path.name, done.returncode, done.stderr))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return outcomes


def render(outcomes: list[Outcome], markdown: bool) -> str:
    counts = Counter(o.result for o in outcomes)
    summary = (
        f"{len(outcomes)} files: {counts['accepted']} accepted, {counts['warned']} warned, "
        f"{counts['refused']} refused"
    )
    if markdown:
        rows = ["| file | result | why (first warning or the error) |", "|---|---|---|"]
        rows += [f"| {o.file} | {o.result} | {o.why.replace('|', '/')} |" for o in outcomes]
        return "\n".join([*rows, "", summary])
    width = max((len(o.file) for o in outcomes), default=4)
    rows = [f"{'FILE':<{width}}  {'RESULT':<8}  WHY"]
    rows += [f"{o.file:<{width}}  {o.result:<8}  {o.why}" for o in outcomes]
    return "\n".join([*rows, "", summary])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO), help="the pinnace tree to run")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--namespaces-first",
        action="store_true",
        help="first apply the files that only declare Namespaces (as a user would)",
    )
    args = parser.parse_args()
    print(render(run(Path(args.source).resolve(), args.namespaces_first), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
