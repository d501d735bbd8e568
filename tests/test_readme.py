"""Every command and code block of README.md, run in README order on generated audio, so the
front page cannot drift from what the code does.

A sandbox folder stands for the user's working folder: ``my-audio/`` (speech-like mp3 with
``stem.txt`` transcripts, ogg and flac), ``.venv`` (a link to this checkout's), and what the
earlier blocks made. ``sh`` blocks run in bash with ``.venv/bin`` on PATH, ``python`` blocks in
the project's interpreter, the ``jsonl`` block is the manifest the README names. Blocks that
only install are checked for their target instead: ``make X`` must be a Makefile target
(``make -n``), and ``git clone`` is what CI itself does. ``HOST`` (a cluster's scheduler) is
this machine; ``s3://`` blocks run against a moto S3 server on loopback holding ``my-audio``,
``--backend dask`` blocks start the README's own scheduler and worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, make_file

README = REPO / "README.md"
MANIFEST_NAME = "my-manifest.jsonl"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
RUN_LANGS = {"sh", "python", "jsonl"}
BLOCK_TIMEOUT = 420


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int

    @property
    def needs_s3(self) -> bool:
        return "s3://" in self.code

    @property
    def needs_cluster(self) -> bool:
        return "--backend dask" in self.code

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str) -> list[Block]:
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _params() -> list:
    params = []
    for block in BLOCKS:
        if block.lang not in RUN_LANGS:
            continue
        marks = [pytest.mark.s3] if block.needs_s3 else []
        marks += [pytest.mark.cluster] if block.needs_cluster else []
        params.append(pytest.param(block, id=f"line{block.line}-{block.lang}", marks=marks))
    return params


def shell_script(code: str) -> str:
    """The block as the test runs it: installs become checks of their target."""
    lines = []
    for line in code.splitlines():
        command = line.split("#", 1)[0].strip()
        if command.startswith("git clone"):
            continue  # what CI does before it runs anything
        if command.startswith("make "):
            targets = command.split()[1:]
            line = f'make -n -C "{REPO}" {" ".join(targets)} >/dev/null'
        lines.append(line.replace("HOST", "127.0.0.1"))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """The user's folder: their audio (two speakers' mp3 with transcripts, an ogg, a flac)."""
    root = tmp_path_factory.mktemp("readme")
    audio = root / "my-audio"
    for speaker in ("speaker1", "speaker2"):
        for n, seconds in enumerate((6.5, 3.0, 11.0)):
            path = make_file(audio / speaker / f"utt{n:03d}.mp3", seconds=seconds, sr=44100)
            path.with_suffix(".txt").write_text(f"words of {speaker} number {n}\n")
    make_file(audio / "field" / "dawn.ogg", seconds=25.0, sr=48000)
    make_file(audio / "field" / "dusk.flac", seconds=70.0, sr=48000, channels=1)
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "examples").symlink_to(REPO / "examples")  # the clone's, as a user has them
    return root


@pytest.fixture(scope="module")
def environment(sandbox) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(REPO)
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="module")
def s3_server(sandbox, environment):
    """A moto S3 server with the bucket the README names, ``my-audio`` uploaded into it."""
    import fsspec
    from moto.server import ThreadedMotoServer

    buckets = {m for b in BLOCKS for m in re.findall(r"s3://([\w.-]+)/", b.code)}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for bucket in buckets:
        fs.mkdir(bucket)
        fs.put(str(sandbox / "my-audio"), f"{bucket}/my-audio", recursive=True)
    yield env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _run(args: list[str], cwd: Path, env: dict[str, str], block: Block) -> None:
    """Run one block to its end; its output goes to a file, not a pipe, since background
    processes it starts (a scheduler) would hold a pipe open past the block's end."""
    log = cwd / f".block-{block.line}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the block's background processes go with it
        )
        try:
            proc.wait(timeout=BLOCK_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, f"{block} failed with status {proc.returncode}:\n{output}"
    assert "Traceback" not in output, f"{block} printed a traceback:\n{output}"


def test_the_readme_has_the_blocks_a_newcomer_needs():
    langs = [b.lang for b in BLOCKS]
    assert langs.count("sh") >= 5 and langs.count("python") >= 2
    assert sum(b.lang == "jsonl" for b in BLOCKS) == 1, "one example manifest, my-manifest.jsonl"
    assert all(b.lang in RUN_LANGS | {"text"} for b in BLOCKS), "an unknown block kind"
    first = BLOCKS[0].code
    assert "make setup" in first and ".venv/bin/activate" in first


def test_a_make_line_that_names_no_target_fails():
    """The check stands for the install commands: it must catch a target that is gone."""
    script = shell_script("make no-such-target")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("block", _params())
def test_readme_block_runs(block: Block, sandbox, environment, request):
    env = dict(environment)
    if block.needs_s3:
        env.update(request.getfixturevalue("s3_server"))
    if block.lang == "jsonl":
        for line in block.code.splitlines():
            entry = json.loads(line)
            assert (sandbox / entry["audio_filepath"]).is_file(), entry["audio_filepath"]
        (sandbox / MANIFEST_NAME).write_text(block.code)
        return
    if block.lang == "python":
        _run([sys.executable, "-c", block.code], sandbox, env, block)
        return
    _run(["bash", "-euo", "pipefail", "-c", shell_script(block.code)], sandbox, env, block)
