"""Several processes running the same `with storage:` block compute each missing call once."""

import subprocess
import sys
import textwrap

from memostore import Storage

from helpers import REPO_ROOT

BLOCK = textwrap.dedent("""
    import os, sys, time
    from memostore import Storage, op

    @op
    def slow(x):
        time.sleep(0.3)
        with open(sys.argv[2], "a") as log:
            log.write(f"{os.getpid()} {x}\\n")
        return x * 10

    storage = Storage(**{sys.argv[3]: sys.argv[1]})
    with storage:
        values = [slow(x) for x in range(6)]
    assert storage.unwrap(values) == [x * 10 for x in range(6)]
""")


def run_twice_at_once(tmp_path, target, keyword):
    script, log = tmp_path / "block.py", tmp_path / "computed.log"
    script.write_text(BLOCK)
    processes = [subprocess.Popen([sys.executable, str(script), target, str(log), keyword],
                                  env={"PYTHONPATH": str(REPO_ROOT)}) for _ in range(2)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    return sorted(int(line.split()[1]) for line in log.read_text().splitlines())


def test_two_processes_compute_each_call_once_on_a_sqlite_file(tmp_path):
    db_path = str(tmp_path / "shared.db")
    Storage(db_path=db_path)  # created up front, as a team's store would be
    assert run_twice_at_once(tmp_path, db_path, "db_path") == list(range(6))
    assert len(Storage(db_path=db_path).cf("slow").df()) == 6


def test_two_processes_compute_each_call_once_on_postgres(tmp_path, postgres_url):
    assert run_twice_at_once(tmp_path, postgres_url, "db_url") == list(range(6))
