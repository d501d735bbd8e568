"""--backend dask: a real distributed.LocalCluster of worker processes on loopback gives
the bytes a local run gives, and survives a worker killed in the middle of a run."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import distributed
import pytest
from helpers import make_file, run_prep

from manifests import iter_journal
from prep.convert import JOURNAL, ConvertOptions, convert

pytestmark = pytest.mark.cluster

PART = 3.0
"""Seconds per part here (:mod:`prep.parts`): a file of a few seconds is cut."""


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) and its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    src = tmp_path_factory.mktemp("dask") / "src"
    for i, seconds in enumerate([1.2, 2.5, 3.1, 0.8, 4.4, 2.2]):
        make_file(src / f"spk{i % 2}" / f"u{i}.{['mp3', 'ogg', 'flac'][i % 3]}", seconds=seconds)
    (src / "spk0" / "u0.txt").write_text("a transcript")
    (src / "bad.mp3").write_bytes(b"not audio at all")
    # long enough to be converted as parts spread over the workers (prep.parts)
    make_file(src / "long.flac", seconds=2 * PART + 1, sr=22050, channels=1)
    return src


def test_convert_and_shard_on_a_cluster_give_the_local_bytes(cluster, small_set, tmp_path):
    address = cluster.scheduler_address
    local, remote = tmp_path / "local", tmp_path / "remote"
    # in process, for short parts (no command-line option sets them)
    assert convert(small_set, local / "conv", ConvertOptions(jobs=2, part_seconds=PART)).failed == 1
    options = ConvertOptions(backend="dask", scheduler=address, part_seconds=PART)
    summary = convert(small_set, remote / "conv", options)
    assert summary.failed == 1 and summary.errors[0]["source"] == "bad.mp3"
    shard_args = ["--segment", "1s", "--format", "segments,mel,webdataset,hdf5,memmap"]
    shard_args += ["--n-mels", "40", "--shard-size", "4"]
    run_prep("shard", str(local / "conv"), str(local / "sh"), *shard_args, "-j", "2", check=True)
    # the same inputs (format.json records their mtimes); the address from the environment
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
    run_prep(
        "shard", str(local / "conv"), str(remote / "sh"), *shard_args, "--backend", "dask",
        check=True, env=env,
    )  # fmt: skip
    local_tree, remote_tree = _tree(local), _tree(remote)
    assert len(local_tree) > 60 and "sh/webdataset/shard-000001.tar" in local_tree
    assert local_tree.keys() == remote_tree.keys()
    different = [name for name in local_tree if local_tree[name] != remote_tree[name]]
    assert different == []


def test_dask_without_a_scheduler_or_with_a_dead_one_is_one_line(small_set, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "2s"  # dask's own setting
    result = run_prep("convert", str(small_set), str(tmp_path / "o"), "--backend", "dask", env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "error: --backend dask needs --scheduler ADDRESS or $DASK_SCHEDULER_ADDRESS\n"
    )
    assert not (tmp_path / "o").exists()
    result = run_prep(
        "shard", str(small_set), str(tmp_path / "s"), "--backend", "dask",
        "--scheduler", "tcp://127.0.0.1:9", env=env,
    )  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: cannot reach the Dask scheduler tcp://127.0.0.1:9")
    result = run_prep("convert", str(small_set), str(tmp_path / "o"), "--backend", "spark")
    assert result.returncode == 2 and "'spark' is not one of local, dask" in result.stderr


def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_lost(cluster, tmp_path):
    """Each file goes through an ffmpeg process (tens of ms each), so the run lasts long
    enough to kill one of the two workers once the first files are journalled."""
    src = tmp_path / "src"
    for i in range(48):
        make_file(src / f"c{i:02d}.flac", seconds=1.0, sr=22050, channels=1)
    options = {"decoder": "ffmpeg", "jobs": 2}
    expected = convert(src, tmp_path / "local", ConvertOptions(**options))
    assert expected.converted == 48

    client = distributed.Client(cluster.scheduler_address)
    pids = client.run(os.getpid)
    out = tmp_path / "remote"
    outcome: dict = {}

    def run() -> None:
        outcome["summary"] = convert(
            src,
            out,
            ConvertOptions(**options, backend="dask", scheduler=cluster.scheduler_address),
        )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while len(list(iter_journal(out / JOURNAL))) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    done_at_kill = len(list(iter_journal(out / JOURNAL)))
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()

    assert 2 <= done_at_kill < 48  # the kill landed in the middle of the run
    summary = outcome["summary"]
    assert (summary.converted, summary.failed) == (48, 0)
    assert _tree(out) == _tree(tmp_path / "local")  # no partial file, every byte the same
    client.wait_for_workers(2, timeout=60)  # the nanny brought a new worker up
    assert victim not in client.run(os.getpid).values()
    client.close()
