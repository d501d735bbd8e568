"""What a Dask cluster and object storage cost against a local run, side by side.

``python -m prep.bench.backends [WORKDIR]``: 80 stereo 44.1 kHz mp3 clips of 5 s converted
by ``prep convert -j 2``, by a 2-worker ``distributed.LocalCluster`` and from s3 to s3
through a moto S3 server on loopback; three alternated repeats, the best of each, as a
ratio to the local run. Not part of ``make bench``: it measures overheads, not formats.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(workdir: Path) -> None:
    from distributed import LocalCluster
    from moto.server import ThreadedMotoServer

    from prep.convert import ConvertOptions, convert
    from prep.democorpus import speech_like, write_audio

    src = workdir / "src"
    if not src.exists():
        for i in range(80):
            write_audio(src / f"c{i:02d}.mp3", speech_like(5.0, 44100, seed=i, channels=2), 44100)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.mkdir("bench")
    fs.put(str(src), "bench/src", recursive=True)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    runs = {
        "local -j 2": lambda: convert(src, workdir / "local", ConvertOptions(jobs=2)),
        "dask, 2 workers": lambda: convert(
            src,
            workdir / "dask",
            ConvertOptions(backend="dask", scheduler=cluster.scheduler_address),
        ),
        "s3 -> s3, -j 2 (moto)": lambda: convert(
            "s3://bench/src", "s3://bench/out", ConvertOptions(jobs=2)
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(3):
        for name, run in runs.items():
            shutil.rmtree(workdir / "local", ignore_errors=True)
            shutil.rmtree(workdir / "dask", ignore_errors=True)
            if fs.exists("bench/out"):
                fs.rm("bench/out", recursive=True)
            started = time.perf_counter()
            summary = run()
            times[name].append(time.perf_counter() - started)
            assert summary.converted == 80 and summary.failed == 0
    base = min(times["local -j 2"])
    for name, seconds in times.items():
        print(f"{name}: best {min(seconds):.2f} s ({base / min(seconds):.2f}x local)")
    cluster.close()
    server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
