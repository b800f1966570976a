#!/usr/bin/env python3
"""The structure of jobs/ that import-linter cannot see, checked by `make lint`.

1. Every UPDATE of a job's status is in jobs/models/job.py (the Job's transitions).
2. Every UPDATE of a video's run state (status, claims, heartbeat, progress) is in jobs/worker/video_run.py,
   or in a Job transition that carries the job's videos with it (a cancel, a requeue, a retry).
3. The admission sequence (active jobs -> make room -> lock -> check again -> reserve) is written once:
   jobs.services.quota.admit.
4. Every operation on a job's files goes through the storage seam, jobs/storage/local_disk.py.
5. No module in jobs/ is over MAX_LINES lines.

Prints each finding as path:line: what, and exits 1 when there is one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
MAX_LINES = 350

JOB_TRANSITIONS = "jobs/models/job.py"
VIDEO_RUN = "jobs/worker/video_run.py"
QUOTA = "jobs/services/quota.py"
LOCKS = "jobs/models/locks.py"
STORAGE_SEAM = "jobs/storage/local_disk.py"

# The columns that make up the run state of a job or of a video.
RUN_STATE = {"status", "claim", "claims", "handbacks", "heartbeat_at", "started_at", "finished_at", "cancelled_at"}
RUN_STATE |= {"progress", "completed_variations", "lost_claims"}
# The steps of an admission: called nowhere but in jobs.services.quota.
ADMISSION_STEPS = {"make_room", "admission_lock", "fits"}
# Operations on files: only the storage seam does them to a job's files.
FILE_FUNCTIONS = {
    ("os", "link"),
    ("os", "replace"),
    ("os", "rename"),
    ("os", "utime"),
    ("os", "fstat"),
    ("os", "remove"),
    ("os", "walk"),
    ("shutil", "rmtree"),
    ("shutil", "copyfile"),
    ("shutil", "move"),
    ("shutil", "disk_usage"),
}
FILE_METHODS = {"unlink", "rmdir", "rglob", "iterdir", "touch", "write_bytes", "write_text", "read_bytes"}
# Files that are not a job's: a user's slot locks, runworker's stop file and /proc.
OWN_FILES = {"jobs/services/slots.py", "jobs/management/commands/runworker.py"}


def python_files() -> list[Path]:
    return sorted(path for path in JOBS.rglob("*.py") if "migrations" not in path.parts)


def receiver(call: ast.Call) -> str:
    return ast.unparse(call.func.value) if isinstance(call.func, ast.Attribute) else ""


def keywords(call: ast.Call) -> set[str]:
    """The fields a call names: its keywords, and the keys of a dict literal passed with ** or as defaults=."""
    names = {keyword.arg for keyword in call.keywords if keyword.arg}
    for keyword in call.keywords:
        if (keyword.arg is None or keyword.arg == "defaults") and isinstance(keyword.value, ast.Dict):
            names |= {key.value for key in keyword.value.keys if isinstance(key, ast.Constant)}
    return names


def listed_fields(call: ast.Call) -> set[str]:
    """The field names a save(update_fields=...) or bulk_update(rows, [...]) lists."""
    lists = [keyword.value for keyword in call.keywords if keyword.arg in ("update_fields", "fields")]
    lists += [arg for arg in call.args if isinstance(arg, ast.List | ast.Tuple)]
    return {
        item.value
        for value in lists
        if isinstance(value, ast.List | ast.Tuple)
        for item in value.elts
        if isinstance(item, ast.Constant)
    }


def names_a_job(expression: str) -> bool:
    """Does the receiver of an UPDATE read as a Job queryset (not a video's rows)?"""
    return "Job" in expression or "this_run" in expression or expression.startswith(("job.", "self.job"))


def check_updates(name: str, tree: ast.AST) -> list[tuple[int, str]]:
    """Rules 1 and 2: which changes of run state are where."""
    homes = (JOB_TRANSITIONS, VIDEO_RUN)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign) and name not in homes:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in RUN_STATE:
                    found.append((node.lineno, f"run state .{target.attr} assigned outside {' or '.join(homes)}"))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = node.value.upper().replace('"', "").replace("`", "")
            if "UPDATE JOBS_" in sql:
                found.append((node.lineno, "raw SQL UPDATE of a job table"))
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        method = node.func.attr
        if method in ("update", "update_or_create"):
            changed = keywords(node) & RUN_STATE
            if not changed:
                continue
            if name == VIDEO_RUN and names_a_job(receiver(node)):
                found.append((node.lineno, f"a job's {sorted(changed)} changed outside {JOB_TRANSITIONS}"))
            elif name not in homes:
                found.append((node.lineno, f"run state {sorted(changed)} changed outside {' or '.join(homes)}"))
        elif method in ("save", "bulk_update") and name not in homes and listed_fields(node) & RUN_STATE:
            found.append((node.lineno, f"run state {sorted(listed_fields(node) & RUN_STATE)} saved outside the homes"))
    return found


def check_admission(name: str, tree: ast.AST) -> list[tuple[int, str]]:
    """Rule 3: the admission's steps are used in quota alone (called or referred to), its lock is taken once,
    in admit(), and no other module takes the advisory lock by hand."""
    found, lock_calls = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "pg_advisory" in node.value:
            if name != LOCKS:
                found.append((node.lineno, f"an advisory lock taken outside {LOCKS}"))
        used = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
        if used in ADMISSION_STEPS and name not in (QUOTA, LOCKS):
            found.append((node.lineno, f"{used} used outside {QUOTA}: admit work with quota.admit()"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "admission_lock":
            lock_calls.append(node.lineno)
    if name == QUOTA:
        admits = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "admit"]
        if len(admits) != 1:
            found.append((1, "quota must define admit() once"))
        if len(lock_calls) != 1:
            found.append((1, f"the admission lock is taken {len(lock_calls)} times in quota: once, in admit()"))
    return found


def check_storage_seam(name: str, tree: ast.AST) -> list[tuple[int, str]]:
    """Rule 4: file operations in the storage seam only."""
    if name == STORAGE_SEAM or name in OWN_FILES:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append((node.lineno, f"open() outside {STORAGE_SEAM}: use storage.disk"))
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            if (owner, func.attr) in FILE_FUNCTIONS:
                found.append((node.lineno, f"{owner}.{func.attr}() outside {STORAGE_SEAM}: use storage.disk"))
            elif func.attr in FILE_METHODS and owner not in ("storage", "disk"):
                found.append((node.lineno, f".{func.attr}() outside {STORAGE_SEAM}: use storage.disk"))
    return found


def check(paths: list[Path]) -> list[str]:
    findings = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES:
            findings.append(f"{name}:1: {lines} lines, over {MAX_LINES}: split it by concern")
        tree = ast.parse(text, name)
        for check_one in (check_updates, check_admission, check_storage_seam):
            findings += [f"{name}:{line}: {what}" for line, what in check_one(name, tree)]
    return findings


def main() -> int:
    findings = check(python_files())
    for finding in findings:
        print(finding)
    if findings:
        print(f"check_structure: {len(findings)} findings (docs/architecture/README.md, 'Modules: where things live')")
        return 1
    print("check_structure: every rule holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
