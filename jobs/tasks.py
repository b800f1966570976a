"""The task names of earlier versions, for tasks still in a queue when the code is upgraded.

New tasks name jobs.worker.tasks; the schedules are rewritten by the next `migrate`.
"""

from jobs.worker.tasks import process_job, process_job_part, run_cleanup, worker_heartbeat

__all__ = ["process_job", "process_job_part", "run_cleanup", "worker_heartbeat"]
