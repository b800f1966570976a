"""scripts/check_structure.py: the tree keeps to it, and each rule catches what it is for."""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_structure", ROOT / "scripts" / "check_structure.py")
check_structure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_structure)


def findings(name: str, source: str) -> list[str]:
    tree = ast.parse(textwrap.dedent(source))
    rules = (check_structure.check_updates, check_structure.check_admission, check_structure.check_storage_seam)
    return [what for rule in rules for _line, what in rule(name, tree)]


def test_the_tree_keeps_to_every_rule():
    assert check_structure.check(check_structure.python_files()) == []


@pytest.mark.parametrize(
    "name, source, words",
    [
        ("jobs/services/reuse.py", "Job.objects.filter(pk=1).update(status='queued')", "run state ['status']"),
        ("jobs/worker/cleanup.py", "job.sources.update(heartbeat_at=None, claims=2)", "['claims', 'heartbeat_at']"),
        ("jobs/worker/cleanup.py", "rows.update(**{'status': 'failed'})", "run state ['status']"),
        ("jobs/worker/cleanup.py", "Job.objects.update_or_create(pk=1, defaults={'status': 'x'})", "run state"),
        ("jobs/worker/video_run.py", "Job.objects.filter(pk=1).update(status='failed')", "a job's ['status']"),
        ("jobs/worker/video_run.py", "job.this_run().update(status='failed')", "a job's ['status']"),
        ("jobs/web/admin.py", "job.save(update_fields=['status'])", "saved outside"),
        ("jobs/web/admin.py", "Job.objects.bulk_update(jobs, ['status'])", "saved outside"),
        ("jobs/web/admin.py", "job.status = 'failed'", "run state .status assigned"),
        ("jobs/web/admin.py", "cursor.execute('update jobs_job set status = 1')", "raw SQL"),
        ("jobs/web/admin.py", "cursor.execute('UPDATE \"jobs_job\" SET status = 1')", "raw SQL"),
        ("jobs/services/uploads.py", "quota.make_room(owner, 1)", "make_room used outside"),
        ("jobs/services/reuse.py", "with locks.admission_lock(): pass", "admission_lock used outside"),
        ("jobs/services/reuse.py", "lock = quota.fits", "fits used outside"),
        ("jobs/services/reuse.py", "cursor.execute('SELECT pg_advisory_xact_lock(1)')", "advisory lock"),
        ("jobs/web/archive.py", "open(path, 'rb')", "open() outside"),
        ("jobs/worker/runner.py", "os.replace(a, b)", "os.replace() outside"),
        ("jobs/worker/cleanup.py", "path.unlink()", ".unlink() outside"),
    ],
)
def test_each_rule_catches_what_it_is_for(name, source, words):
    assert any(words in finding for finding in findings(name, source)), findings(name, source)


def test_the_homes_may_do_what_they_are_for():
    assert findings("jobs/models/job.py", "Job.objects.filter(pk=1).update(status='queued')") == []
    assert findings("jobs/worker/video_run.py", "self.rows().update(status='failed')") == []
    assert findings("jobs/storage/local_disk.py", "os.replace(a, b); path.unlink()") == []
    quota = """
    @contextmanager
    def admit(owner, needed):
        make_room(owner, needed)
        with locks.admission_lock():
            yield
    """
    assert findings("jobs/services/quota.py", quota) == []


def test_a_module_over_the_line_limit_is_a_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(check_structure, "ROOT", tmp_path)
    module = tmp_path / "jobs" / "big.py"
    module.parent.mkdir()
    module.write_text("x = 1\n" * (check_structure.MAX_LINES + 1))
    assert check_structure.check([module]) == [
        f"jobs/big.py:1: 351 lines, over {check_structure.MAX_LINES}: split it by concern"
    ]
