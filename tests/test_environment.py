"""The install guard: the lock check and torchaudio's compiled part (see tests/lockcheck.py)."""

from __future__ import annotations

from importlib import metadata

import torch
import torchaudio
from lockcheck import LOCK, environment_problem, lock_mismatches, locked_pins


def test_torchaudio_compiled_part_runs_beside_torch():
    mel = torchaudio.transforms.MelSpectrogram(16000, n_mels=64)(torch.randn(16000))
    assert mel.shape == (64, 81) and torch.isfinite(mel).all()
    fbank = torchaudio.compliance.kaldi.fbank(torch.randn(1, 16000), num_mel_bins=80)
    assert fbank.shape == (98, 80)


def test_installed_versions_match_the_lock():
    assert lock_mismatches() == []
    pins = locked_pins()
    assert str(pins["torch"].specifier) == str(pins["torchaudio"].specifier)  # a built pair


def test_a_drifted_package_is_named_with_what_to_do(tmp_path):
    installed = metadata.version("torchaudio").split("+")[0]
    drifted = installed[:-1] + str((int(installed[-1]) + 1) % 10)
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        LOCK.read_text().replace(f"torchaudio=={installed}", f"torchaudio=={drifted}")
        + "not-installed-anywhere==1.0  # a package the lock has and the venv lacks\n"
    )
    problem = environment_problem(lock)
    assert "\n" not in problem
    assert f"torchaudio {metadata.version('torchaudio')} installed, locked =={drifted}" in problem
    assert "not-installed-anywhere missing" in problem
    assert "make reinstall" in problem


def test_a_lock_line_for_another_platform_is_ignored(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==0.0.1 ; sys_platform == 'nonexistent-os'\n")
    assert lock_mismatches(lock) == []
