"""Raw-SQLite model of a new call's hash-index work, per design and store size: can it stay flat to 10M calls?

    python benchmarks/index_growth.py --dir DIR --calls 10000,1000000 --designs plain,lsm:t=10:l0=425000:bloom

Per new call of the W4 chain memostore inserts about 4.25 random 16-byte keys into B-tree indexes
(calls.hid, calls.cid, refs.hid, values.cid) and probes about 2 missing keys; everything else appends at the
end of rowid tables. This script models only that work, committed every 10,000 calls, with memostore's
connection settings (WAL, synchronous=NORMAL, 256 MiB page cache, checkpoint when the log reaches the file's
size, at most 512 MiB). Each key also gets a row (id, full hash) in a rowid table ``t``. Designs:

  plain[:k=K]      one unique index on the 16-byte hash (today's layout; its 4 indexes as one). k=2.25 bounds
                   what dropping the calls.cid and values.cid indexes would give.
  int8[:k=K]       the hash's first 8 bytes as an INTEGER key in a WITHOUT ROWID (h8, id) table; the full hash is
                   checked on the row (8-byte prefixes collide, so the key is (h8, id), not h8 alone).
  lsm:t=T:l0=S[:bloom]
                   log-structured, size-tiered: new keys go to a small WITHOUT ROWID table l0; when it holds S
                   keys it is written out, sorted, as a run of level 1; T runs of a level are merged (a sorted
                   rewrite into a new table, INSERT .. SELECT .. UNION ALL .. ORDER BY) into one run of the
                   next level. Without ``bloom`` a probe looks in l0 and every run (one statement), and a
                   commit joins its new keys against every run (uniqueness across runs is no longer an index's:
                   the writer checks it inside its write transaction). ``bloom``: Bloom filters kept in the
                   process (blocked: about 8 bits in one 64-bit word a key, 16 bits a key): one per run, which
                   a stored key's lookup tests to probe only the run holding it, and one over all runs (in
                   segments that double, never rebuilt), which answers most missing keys and the commit's
                   uniqueness check without SQL. A flush or merge reads the new run's keys back (group_concat,
                   one string a slice) to build its filter: counted in its CPU. A store would keep the filters
                   as blobs; here they are built at open, untimed (``bloom_open_s``).

A base of N calls is built once in --dir and copied for each run. Random-key designs are grown by random
inserts, as a store grows (pages about 70% full; --reuse-sim links the 4.25-key plain bases of
/work/bench-scale/sim, which were grown that way). An lsm base is T runs of the top level (just before its
merge), built by sorted insertion as merges build them, plus l0's remainder. Each run: ``--rounds`` commits of
10,000 new calls (the first is left out of the means: cold cache); l0's flushes are timed apart. Then, for lsm,
one timed merge per level whose merge a store of that size has seen (T runs of a level below the top are made
first, untimed); each key is rewritten once per level it passes, so the flush's and merges' CPU per key, times the
keys per call, is charged to every call (``merge_us``). Then 2,000 single lookups of stored keys (``hit_us``) and of
missing ones (``miss_us``). One JSON line per design x size: CPU and wall µs per call, KB written and read per
call (/proc/self/io), ``total_us`` = round CPU + merge CPU per call.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _bloom_filters import Bloom, Segments  # noqa: E402

COMMIT_CALLS = 10_000
PROBES_PER_CALL = 2
PAGE_BYTES = 4096
CACHE_KIB = 256 * 1024
WAL_MAX_BYTES = 512 << 20
BUILD_CHUNK = 425_000
SIM_DIR = Path("/work/bench-scale/sim")


@dataclass(frozen=True)
class Design:
    kind: str  # plain, int8, lsm
    keys: float = 4.25
    tiers: int = 10
    level0: int = 425_000
    bloom: bool = False

    @staticmethod
    def parse(spec: str) -> Design:
        kind, *opts = spec.split(":")
        fields: dict = {"kind": kind}
        for opt in opts:
            name, _, value = opt.partition("=")
            if name == "bloom":
                fields["bloom"] = True
            else:
                fields[{"k": "keys", "t": "tiers", "l0": "level0"}[name]] = float(value) if name == "k" else int(value)
        if kind not in ("plain", "int8", "lsm"):
            raise SystemExit(f"unknown design {spec!r}")
        return Design(**fields)

    def base_name(self, calls: int) -> str:
        nkeys = int(calls * self.keys)
        if self.kind != "lsm":
            return f"{self.kind}-{nkeys}.db"
        return f"lsm-t{self.tiers}-l{self.level0}-{nkeys}.db"


def h8(key: bytes) -> int:
    return int.from_bytes(key[:8], "big", signed=True)


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build_connection(path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8000000", f"page_size={PAGE_BYTES}"):
        c.execute("PRAGMA " + pragma)
    return c


def key_table(name: str, int8: bool = False) -> str:
    cols = "h8 INTEGER NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (h8, id)" if int8 else \
        "h BLOB NOT NULL PRIMARY KEY, id INTEGER NOT NULL"
    return f"CREATE TABLE {name} ({cols}) WITHOUT ROWID"


def build_random(design: Design, path: Path, nkeys: int) -> None:
    """Grow a plain or int8 base by random inserts, in arrival order, as a store grows."""
    c = build_connection(path)
    if design.kind == "plain":
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, h BLOB NOT NULL UNIQUE)")
    else:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, h BLOB NOT NULL)")
        c.execute(key_table("k", True))
    done = 0
    while done < nkeys:
        n = min(BUILD_CHUNK, nkeys - done)
        keys = [os.urandom(16) for _ in range(n)]
        c.execute("BEGIN")
        c.executemany("INSERT INTO t(id, h) VALUES (?, ?)", ((done + i + 1, k) for i, k in enumerate(keys)))
        if design.kind == "int8":
            c.executemany("INSERT INTO k VALUES (?, ?)", ((h8(k), done + i + 1) for i, k in enumerate(keys)))
        c.execute("COMMIT")
        done += n
    c.execute("PRAGMA journal_mode=WAL")
    c.close()


def lsm_layout(design: Design, nkeys: int) -> tuple[list[tuple[int, int]], int]:
    """The runs (level, keys) of a base of ``nkeys`` keys, T runs of its top level first, and l0's keys."""
    top, size = 0, design.level0
    while size * design.tiers < nkeys:
        top, size = top + 1, size * design.tiers
    runs, left = [], nkeys
    for level in range(top + 1, 0, -1):
        size = design.level0 * design.tiers ** (level - 1)
        while left >= size and sum(1 for lv, _ in runs if lv == level) < design.tiers:
            runs.append((level, size))
            left -= size
    return runs, left


def lsm_schema(c: sqlite3.Connection) -> None:
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, h BLOB NOT NULL)")
    c.execute(key_table("l0"))
    c.execute("CREATE TABLE lsm_runs (name TEXT PRIMARY KEY, level INTEGER NOT NULL, keys INTEGER NOT NULL)")


def key_rows(keys: list[bytes], first_id: int) -> list[tuple]:
    return [(k, first_id + i) for i, k in enumerate(keys)]


def add_run(c: sqlite3.Connection, design: Design, level: int, nkeys: int, first_id: int) -> int:
    """Write a run of ``nkeys`` new random keys by sorted insertion (as a merge writes it), with their rows."""
    name = f"run_{c.execute('SELECT count(*) + 1 FROM sqlite_master').fetchone()[0]}_{os.getpid()}"
    c.execute(key_table(name))
    slices = 1 if nkeys <= 4_250_000 else 16  # big runs in slices by the first byte's high half, in key order
    done = 0
    for n_slice, j in enumerate(range(16) if slices > 1 else [None]):
        n = nkeys // slices + (nkeys % slices if n_slice == slices - 1 else 0)
        keys = [os.urandom(16) for _ in range(n)]
        if j is not None:
            keys = [bytes([j << 4 | k[0] & 15]) + k[1:] for k in keys]
        rows = key_rows(keys, first_id + done)
        c.executemany("INSERT INTO t(id, h) VALUES (?, ?)", ((first_id + done + i, k) for i, k in enumerate(keys)))
        c.executemany(f"INSERT INTO {name} VALUES (?, ?)", sorted(rows))
        done += n
    c.execute("INSERT INTO lsm_runs VALUES (?, ?, ?)", (name, level, nkeys))
    return first_id + nkeys


def build_lsm(design: Design, path: Path, nkeys: int) -> None:
    c = build_connection(path)
    lsm_schema(c)
    runs, left = lsm_layout(design, nkeys)
    next_id = 1
    c.execute("BEGIN")
    for level, size in runs:
        next_id = add_run(c, design, level, size, next_id)
    keys = [os.urandom(16) for _ in range(left)]
    c.executemany("INSERT INTO t(id, h) VALUES (?, ?)", ((next_id + i, k) for i, k in enumerate(keys)))
    c.executemany("INSERT INTO l0 VALUES (?, ?)", key_rows(keys, next_id))
    c.execute("COMMIT")
    c.execute("PRAGMA journal_mode=WAL")
    c.close()


def ensure_base(design: Design, calls: int, base_dir: Path, reuse_sim: bool) -> Path:
    path = base_dir / design.base_name(calls)
    nkeys = int(calls * design.keys)
    sim = SIM_DIR / f"base-{calls}-4096.db"
    if not path.exists() and reuse_sim and design.kind == "plain" and design.keys == 4.25 and sim.exists():
        path.symlink_to(sim)
    if not path.exists():
        start = time.time()
        tmp = path.with_suffix(".building")
        tmp.unlink(missing_ok=True)
        (build_lsm if design.kind == "lsm" else build_random)(design, tmp, nkeys)
        tmp.rename(path)
        print(json.dumps({"built": str(path), "keys": nkeys, "s": round(time.time() - start)}), flush=True)
    return path


class Store:
    """A copied base, with one design's probe, commit and merge."""

    def __init__(self, design: Design, path: Path) -> None:
        self.d, self.path = design, path
        self.c = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"cache_size=-{CACHE_KIB}",
                       "journal_size_limit=67108864", "temp_store=MEMORY"):
            self.c.execute("PRAGMA " + pragma)
        self.next_id = self.c.execute("SELECT coalesce(max(id), 0) + 1 FROM t").fetchone()[0]
        self.bloom: Segments | None = None
        self.run_blooms: dict[str, Bloom] = {}
        self.bloom_open_s = 0.0
        if design.kind == "lsm":
            self._load_runs()
            if design.bloom:
                self._build_bloom()

    def _load_runs(self) -> None:
        self.runs = [tuple(r) for r in self.c.execute("SELECT name, level, keys FROM lsm_runs ORDER BY rowid DESC")]
        one = "SELECT id FROM {} WHERE h = ?1"
        self.probe_l0 = one.format("l0")
        self.probe_run = {r[0]: one.format(r[0]) for r in self.runs}
        self.probe_l0_run = {r[0]: f"{self.probe_l0} UNION ALL {one.format(r[0])} LIMIT 1" for r in self.runs}
        self.probe_all = " UNION ALL ".join(one.format(n) for n in ["l0"] + [r[0] for r in self.runs]) + " LIMIT 1"
        check = "SELECT count(*) FROM t CROSS JOIN {} x ON x.h = t.h WHERE t.id >= ?1"
        self.check_runs = [check.format(r[0]) for r in self.runs]

    def _build_bloom(self) -> None:
        """The filter over all runs, and one filter per run, which a stored key's lookup tests to probe only the
        run that holds it. A store would keep them as blobs, written once by the flush or merge that made the
        run; here they are built at open, untimed (``bloom_open_s``)."""
        start, total = time.perf_counter(), sum(r[2] for r in self.runs)
        self.bloom = Segments(total * 2)  # room for new runs: a new segment is made once per doubling
        for name, _, nkeys in self.runs:
            self.run_blooms[name] = self._run_bloom(name, nkeys, into_all=True)
        self.bloom_open_s = time.perf_counter() - start

    def _run_bloom(self, name: str, nkeys: int, into_all: bool) -> Bloom:
        """A run's filter, from its keys read back (in 16 slices, as one string each)."""
        assert self.bloom is not None
        bloom = Bloom(nkeys)
        for j in range(0, 256, 16):
            q = f"SELECT CAST(group_concat(h, x'') AS BLOB) FROM {name} WHERE h >= x'{j:02x}'"
            q += f" AND h < x'{j + 16:02x}'" if j < 240 else ""
            raw = self.c.execute(q).fetchone()[0]
            if raw:
                bloom.add(raw)
                if into_all:
                    self.bloom.add(raw)
        return bloom

    def filter_bytes(self) -> int:
        """The memory the process keeps for the filters."""
        parts = self.bloom.parts if self.bloom is not None else []
        return sum(b.words.nbytes for b in [*parts, *self.run_blooms.values()])

    def probe(self, key: bytes) -> list:
        if self.d.kind == "plain":
            return self.c.execute("SELECT id FROM t WHERE h = ?", (key,)).fetchall()
        if self.d.kind == "int8":
            return self.c.execute("SELECT t.id FROM k JOIN t ON t.id = k.id WHERE k.h8 = ? AND t.h = ?",
                                  (h8(key), key)).fetchall()
        if self.bloom is None:
            return self.c.execute(self.probe_all, (key,)).fetchall()
        word, bits = Bloom.key_bits(key)  # the filters first: l0 and the first candidate run in one statement
        if not self.bloom.maybe_bits(word, bits):
            return self.c.execute(self.probe_l0, (key,)).fetchall()
        candidates = [name for name, _, _ in self.runs if self.run_blooms[name].maybe_bits(word, bits)]
        if not candidates:
            return self.c.execute(self.probe_l0, (key,)).fetchall()
        found = self.c.execute(self.probe_l0_run[candidates[0]], (key,)).fetchall()
        for name in candidates[1:]:  # a false positive of the first run's filter (about 2%)
            if found:
                break
            found = self.c.execute(self.probe_run[name], (key,)).fetchall()
        return found

    def insert(self, keys: list[bytes]) -> None:
        """Inside the write transaction: the keys' rows and index entries, unique across the whole index."""
        ids = range(self.next_id, self.next_id + len(keys))
        self.next_id += len(keys)
        if self.d.kind == "plain":
            self.c.executemany("INSERT INTO t(id, h) VALUES (?, ?) ON CONFLICT DO NOTHING", zip(ids, keys, strict=True))
            return
        self.c.executemany("INSERT INTO t(id, h) VALUES (?, ?)", zip(ids, keys, strict=True))
        if self.d.kind == "int8":
            rows = ((h8(k), i, k) for i, k in zip(ids, keys, strict=True))
            self.c.executemany("INSERT INTO k SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM k JOIN t ON t.id = k.id "
                               "WHERE k.h8 = ?1 AND t.h = ?3 AND t.id != ?2)", rows)
            return
        self.check_unique(keys, ids[0])
        # copied from the new rows in one statement, not one Python call a key
        self.c.execute("INSERT INTO l0 SELECT h, id FROM t WHERE id >= ? ORDER BY h", (ids[0],))

    def check_unique(self, keys: list[bytes], first_id: int) -> None:
        """The new keys against every run: in the process's Bloom filter, then in SQL for its positives."""
        if self.bloom is not None:
            maybe = self.bloom.maybe_many(b"".join(keys))
            suspects = [k for k, m in zip(keys, maybe, strict=True) if m]
            found = sum(len(self.probe(k)) for k in suspects)
        else:
            found = sum(self.c.execute(q, (first_id,)).fetchone()[0] for q in self.check_runs)
        assert found == 0, "a random 128-bit key was already stored"

    def pace_checkpoints(self) -> None:
        file_pages = os.path.getsize(self.path) // PAGE_BYTES
        self.c.execute(f"PRAGMA wal_autocheckpoint={max(1000, min(file_pages, WAL_MAX_BYTES // PAGE_BYTES))}")

    def l0_full(self) -> bool:
        return self.d.kind == "lsm" and self.c.execute("SELECT count(*) FROM l0").fetchone()[0] >= self.d.level0

    def flush(self) -> int:
        """l0 written out as a sorted run of level 1; its keys added to the Bloom filter."""
        c, name = self.c, f"run_f{self.next_id}"
        c.execute("BEGIN IMMEDIATE")
        c.execute(key_table(name))
        c.execute(f"INSERT INTO {name} SELECT * FROM l0")
        n = c.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        if self.bloom is not None:
            self.run_blooms[name] = self._run_bloom(name, n, into_all=True)
        c.execute("DELETE FROM l0")
        c.execute("INSERT INTO lsm_runs VALUES (?, 1, ?)", (name, n))
        c.execute("COMMIT")
        self._load_runs()
        return n

    def merge(self, level: int) -> int:
        """The T oldest runs of ``level`` rewritten, sorted, as one run of the next level."""
        c = self.c
        sources = [r for r in reversed(self.runs) if r[1] == level][: self.d.tiers]
        name = f"run_m{level}_{self.next_id}"
        c.execute("BEGIN IMMEDIATE")
        c.execute(key_table(name))
        union = " UNION ALL ".join(f"SELECT * FROM {r[0]}" for r in sources)
        c.execute(f"INSERT INTO {name} {union} ORDER BY h")
        for r in sources:
            c.execute(f"DROP TABLE {r[0]}")
            c.execute("DELETE FROM lsm_runs WHERE name = ?", (r[0],))
        n = sum(r[2] for r in sources)
        c.execute("INSERT INTO lsm_runs VALUES (?, ?, ?)", (name, level + 1, n))
        c.execute("COMMIT")
        if self.bloom is not None:  # the merged run's filter, from its keys (the filter over all runs keeps them)
            self.run_blooms[name] = self._run_bloom(name, n, into_all=False)
            for r in sources:
                del self.run_blooms[r[0]]
        self._load_runs()
        return n


def measured(work) -> dict[str, float]:
    io0, cpu0, wall0 = io_counters(), cpu_seconds(), time.perf_counter()
    work()
    io1 = io_counters()
    return {"cpu": cpu_seconds() - cpu0, "wall": time.perf_counter() - wall0,
            "w": io1["wchar"] - io0["wchar"], "r": io1["rchar"] - io0["rchar"]}


def one_round(store: Store) -> None:
    keys = sorted(os.urandom(16) for _ in range(int(COMMIT_CALLS * store.d.keys)))
    probes = [os.urandom(16) for _ in range(PROBES_PER_CALL * COMMIT_CALLS)]
    store.pace_checkpoints()
    store.c.execute("BEGIN IMMEDIATE")
    for key in probes:
        assert not store.probe(key)
    store.insert(keys)
    store.c.execute("COMMIT")


def merges(store: Store) -> tuple[float, list]:
    """One timed merge per level a key of this store has passed (T runs of it made first, untimed): CPU µs per key,
    summed."""
    total, detail = 0.0, []
    stored = store.next_id - 1
    level = 0
    while store.d.level0 * store.d.tiers ** (level + 1) <= stored:  # the merges a store this size has seen
        level += 1
        size = store.d.level0 * store.d.tiers ** (level - 1)
        have = sum(1 for r in store.runs if r[1] == level)
        if have < store.d.tiers:
            store.c.execute("BEGIN")
            for _ in range(store.d.tiers - have):
                store.next_id = add_run(store.c, store.d, level, size, store.next_id)
            store.c.execute("COMMIT")
            store._load_runs()
            for name, _, nkeys in store.runs:
                if store.bloom is not None and name not in store.run_blooms:
                    store.run_blooms[name] = store._run_bloom(name, nkeys, into_all=True)
        m = measured(lambda lv=level: store.merge(lv))
        per_key = m["cpu"] / (size * store.d.tiers) * 1e6
        total += per_key
        detail.append({"level": level + 1, "keys": size * store.d.tiers, "s_cpu": round(m["cpu"], 1),
                       "s_wall": round(m["wall"], 1), "us_cpu_per_key": round(per_key, 2)})
    return total, detail


def lookups(store: Store, n: int = 2000) -> tuple[float, float]:
    last = store.next_id - 1
    stored = [store.c.execute("SELECT h FROM t WHERE id = ?", (random.randint(1, last),)).fetchone()[0]
              for _ in range(n)]
    missing = [os.urandom(16) for _ in range(n)]
    out = []
    for keys in (stored, missing):
        start = cpu_seconds()
        for key in keys:
            store.probe(key)
        out.append((cpu_seconds() - start) / n * 1e6)
    return out[0], out[1]


def run(design: Design, spec: str, calls: int, args: argparse.Namespace) -> None:
    base = ensure_base(design, calls, args.dir, args.reuse_sim)
    work = args.dir / f"run-{os.getpid()}.db"
    shutil.copyfile(base, work)
    try:
        store = Store(design, work)
        rounds, flush_us, flushes = [], 0.0, 0
        for _ in range(args.rounds):
            rounds.append(measured(lambda: one_round(store)))
            if store.l0_full():
                m = measured(store.flush)
                flush_us, flushes = flush_us + m["cpu"] * 1e6, flushes + 1
        hit_us, miss_us = lookups(store)
        runs = len(store.runs) if design.kind == "lsm" else 0
        merge_us, detail = merges(store) if design.kind == "lsm" and args.merges else (0.0, [])
        flush_key_us = flush_us / (flushes * design.level0) if flushes else 0.0
        kept = rounds[1:]
        per_call = {k: sum(r[k] for r in kept) / len(kept) / COMMIT_CALLS for k in ("cpu", "wall", "w", "r")}
        amortized = design.keys * (merge_us + flush_key_us)
        print(json.dumps({
            "design": spec, "calls": calls, "keys_per_call": design.keys, "rounds": args.rounds, "runs": runs,
            "us_cpu": round(per_call["cpu"] * 1e6, 1), "us_wall": round(per_call["wall"] * 1e6, 1),
            "kb_w": round(per_call["w"] / 1024, 2), "kb_r": round(per_call["r"] / 1024, 2),
            "merge_us": round(amortized, 1), "total_us": round(per_call["cpu"] * 1e6 + amortized, 1),
            "flush_us_per_key": round(flush_key_us, 2), "bloom_open_s": round(store.bloom_open_s, 1),
            "filter_mb": round(store.filter_bytes() / 2**20),
            "hit_us": round(hit_us, 1), "miss_us": round(miss_us, 1), "merges": detail,
            "round_us_cpu": [round(r["cpu"] / COMMIT_CALLS * 1e6) for r in rounds],
        }), flush=True)
        store.c.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="where bases are kept (and runs copied)")
    parser.add_argument("--calls", default="10000,1000000", help="store sizes, comma-separated")
    parser.add_argument("--designs", default="plain,int8,lsm:t=10:l0=425000,lsm:t=10:l0=425000:bloom")
    parser.add_argument("--rounds", type=int, default=12, help="commits of 10,000 calls timed per run")
    parser.add_argument("--no-merges", dest="merges", action="store_false", help="skip the timed lsm merges")
    parser.add_argument("--reuse-sim", action="store_true", help=f"link the plain bases of {SIM_DIR}")
    parser.add_argument("--build-only", action="store_true", help="build the missing bases and stop")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for calls in (int(float(x)) for x in args.calls.split(",")):
        for spec in args.designs.split(","):
            design = Design.parse(spec)
            if args.build_only:
                ensure_base(design, calls, args.dir, args.reuse_sim)
            else:
                run(design, spec, calls, args)


if __name__ == "__main__":
    main()
