"""Blobs in an S3 bucket, tested against a real S3-compatible server (moto's server mode) on loopback.

A team on PostgreSQL shares a store between machines when large values live
in an object store: every process, on any machine, must read what another
wrote, a damaged or missing object must never be returned as a value, and
cleanup must reclaim objects no call names.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from memostore import MissingBlobError, Storage, StoreUnavailableError, op
from memostore.backends.object_blobs import ObjectBlobStore
from memostore.config import is_object_url

from helpers import run_python

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

BUCKET = "team-store"
SMALL_BLOBS = 1024  # values over 1 KiB go to the bucket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on a loopback port, with one bucket."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a user sets for an S3-compatible server; a fresh bucket for each test."""
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    buckets = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if BUCKET in buckets:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=item["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return env


def _objects(endpoint: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint)
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


@op
def noisy(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


NOISY_MODULE = """
import numpy as np
from memostore import Storage, op

@op
def noisy(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)

def run(db_path: str) -> None:
    storage = Storage(db_path=db_path, blob_dir="s3://team-store/blobs", blob_threshold_bytes=1024)
    with storage:
        ref = noisy(10_000, 1)
    print(storage.last_run.computed, ref.cid, float(storage.unwrap(ref).sum()))
"""


def test_large_values_go_to_the_bucket_and_another_process_reads_them(s3_env, s3_endpoint, tmp_path):
    (tmp_path / "noisy_ops.py").write_text(NOISY_MODULE)
    db = str(tmp_path / "runs.db")
    first = run_python(f"import noisy_ops; noisy_ops.run({db!r})", tmp_path, env=s3_env).split()
    second = run_python(f"import noisy_ops; noisy_ops.run({db!r})", tmp_path, env=s3_env).split()
    assert first[0] == "1" and second[0] == "0"  # the second process loaded the value from the bucket
    assert first[1:] == second[1:] and float(second[2]) == pytest.approx(float(noisy.func(10_000, 1).sum()))
    cid = first[1]
    assert sorted(_objects(s3_endpoint)) == [f"blobs/{cid[:2]}/{cid}"]
    assert not (tmp_path / "runs.db-blobs").exists()


def test_a_damaged_or_missing_object_is_never_returned(s3_env, s3_endpoint, tmp_path):
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs", blob_threshold_bytes=SMALL_BLOBS)
    with storage:
        ref = noisy(5_000, 2)
    key = f"blobs/{ref.cid[:2]}/{ref.cid}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    original = _objects(s3_endpoint)[key]
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(damaged))
    report = storage.check()
    assert not report.ok and ref.cid in report.damaged
    client.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(MissingBlobError, match=f"s3://{BUCKET}/blobs/{ref.cid[:2]}/{ref.cid}"):
        ObjectBlobStore(f"s3://{BUCKET}/blobs").get(ref.cid)
    # Loaded through a storage where the op is defined, the missing value is computed again and stored
    # again (inline here: this storage's blob threshold is the default 1 MiB), so the store is whole.
    reopened = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs")
    assert reopened.load_ref(ref.hid, in_memory=True).value.tolist() == noisy.func(5_000, 2).tolist()
    assert reopened.check().ok


def test_writing_a_value_again_replaces_a_damaged_object(s3_env, s3_endpoint):
    blobs = ObjectBlobStore(f"s3://{BUCKET}/blobs")
    cid = "ab" * 16
    blobs.put(cid, b"x" * 4096)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.put_object(Bucket=BUCKET, Key=f"blobs/ab/{cid}", Body=b"y" * 4096)
    blobs.put(cid, [b"x" * 1000, b"x" * 3096])
    assert blobs.get(cid) == b"x" * 4096


def test_cleanup_reclaims_objects_of_dropped_calls_and_orphans(s3_env, s3_endpoint, tmp_path):
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs", blob_threshold_bytes=SMALL_BLOBS)
    with storage:
        kept, dropped = noisy(4_000, 3), noisy(4_000, 4)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    orphan = "cd" * 16
    client.put_object(Bucket=BUCKET, Key=f"blobs/cd/{orphan}", Body=b"left by a killed writer")
    assert storage.check().orphan_files == [orphan]
    storage.drop_calls([storage.get_ref_creator(dropped)])
    cleaned = storage.cleanup_refs(grace_s=0)
    assert cleaned["files"] == 1 and cleaned["values"] == 2  # the orphan; the array and its seed
    assert sorted(_objects(s3_endpoint)) == [f"blobs/{kept.cid[:2]}/{kept.cid}"]
    assert storage.unwrap(kept).shape == (4_000,)


def test_a_tampered_store_cannot_name_objects_outside_the_prefix(s3_env):
    blobs = ObjectBlobStore(f"s3://{BUCKET}/blobs")
    assert blobs.delete(["../../other-bucket/secret", "ab" * 16]) == 0
    with pytest.raises(Exception, match="not a content id"):
        blobs.get("../escape")


def test_worker_processes_share_the_bucket(s3_env, s3_endpoint, tmp_path):
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs", blob_threshold_bytes=SMALL_BLOBS)
    refs = storage.map(noisy, [{"n": 2_000, "seed": seed} for seed in range(4)], executor="processes", n_jobs=2,
                       progress=False)
    assert refs.computed == 4 and len(_objects(s3_endpoint)) == 4
    values = storage.unwrap(refs)
    assert [float(v.sum()) for v in values] == [float(noisy.func(2_000, s).sum()) for s in range(4)]


def test_locations_that_are_and_are_not_object_stores(tmp_path):
    assert is_object_url("s3://bucket/prefix") and is_object_url("gs://bucket")
    assert not is_object_url(str(tmp_path)) and not is_object_url(f"file://{tmp_path}")
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"file://{tmp_path / 'blobs'}",
                      blob_threshold_bytes=SMALL_BLOBS)
    with storage:
        ref = noisy(1_000, 5)
    assert (tmp_path / "blobs" / ref.cid[:2] / ref.cid).is_file()
    assert storage.config.blob_dir == str((tmp_path / "blobs").resolve())


def test_an_object_store_url_without_its_package_names_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"memostore\[s3\]"):
        Storage(db_path=tmp_path / "runs.db", blob_dir="nosuchproto://bucket/blobs")


def test_the_bucket_path_is_not_made_a_local_path(tmp_path):
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs")
    assert storage.config.blob_dir == f"s3://{BUCKET}/blobs"
    assert not Path("s3:").exists()


def test_an_unreachable_object_store_names_the_location_and_keeps_the_calls_pending(tmp_path, monkeypatch):
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}.items():
        monkeypatch.setenv(name, value)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    storage = Storage(db_path=tmp_path / "runs.db", blob_dir=f"s3://{BUCKET}/blobs", blob_threshold_bytes=SMALL_BLOBS)
    with pytest.raises(StoreUnavailableError, match=f"s3://{BUCKET}/blobs.*AWS_ENDPOINT_URL"):
        with storage:
            noisy(2_000, 6)
    assert storage.cache_info()["pending_calls"] == 1  # the finished call waits for the next commit
