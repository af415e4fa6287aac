"""Loading a large array from its blob, verified against its content id, in a fresh process.

    python benchmarks/bench_verified_load.py [--gib 1]

Every loaded value is checked against its content id (xxh3-128 of its
bytes), so a damaged blob is never returned. This measures what that costs
on the way a user meets it: an array stored by one process, loaded by
another. Prints one JSON line: seconds and GB/s, verification included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _harness import emit

STORE = textwrap.dedent('''
    import sys
    import numpy as np
    from memostore import Storage, op

    @op
    def ramp(n):
        return np.arange(n, dtype=np.float64)

    storage = Storage(db_path=sys.argv[1])
    with storage:
        ref = ramp(int(sys.argv[2]))
    print(ref.hid)
''')

LOAD = textwrap.dedent('''
    import sys, time
    from memostore import Storage

    storage = Storage(db_path=sys.argv[1])
    start = time.perf_counter()
    value = storage.load_ref(sys.argv[2], in_memory=True).value
    print(time.perf_counter() - start, value.nbytes)
''')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "big.db")
        count = int(args.gib * 2**30) // 8
        hid = subprocess.run([sys.executable, "-c", STORE, db, str(count)], capture_output=True, text=True,
                             check=True).stdout.strip()
        seconds, nbytes = subprocess.run([sys.executable, "-c", LOAD, db, hid], capture_output=True, text=True,
                                         check=True).stdout.split()
    emit("verified_load", gib=args.gib, seconds=round(float(seconds), 3),
         gb_per_s=round(int(nbytes) / float(seconds) / 1e9, 2))


if __name__ == "__main__":
    main()
