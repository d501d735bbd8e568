"""``kaldi``: a Kaldi data directory (``wav.scp``, ``segments``, ``text``, ``utt2spk``,
``spk2utt``, ``utt2dur``, ``reco2dur``; ``utt2lang`` when every item has a language), read by
Kaldi's scripts and ``lhotse.kaldi.load_kaldi_data_dir``.

Its audio: when every input is already a 16-bit mono WAV at ``--sr`` (a ``prep convert``
folder), ``wav.scp`` points at those files (absolute paths) and ``segments`` at each
item's span of them, so no audio is copied; otherwise each item is written as a WAV under
``wav/`` (real samples, no padding; once, so a rerun reuses it) and is a recording of its
own. ``segments`` is written either way: with it Lhotse reads items that have no
transcript. Utterance ids are the speaker id, ``-`` and the item key (the speaker is the
item itself when unknown), so sorting by utterance also sorts by speaker, as
``utils/validate_data_dir.sh`` wants; every table is sorted bytewise (C locale).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import soundfile as sf

from prep.pcm import encode_pcm16
from prep.segmenting import item_key, key_folder
from prep.writers.base import FormatWriter, WrittenFormat
from prep.writers.files import check_file, check_wav, open_output, write_once

TABLES = ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "utt2dur", "reco2dur", "utt2lang")


def kaldi_id(value: object) -> str:
    """A Kaldi id: no whitespace (a field separator in every table)."""
    return re.sub(r"\s+", "_", str(value).strip()) or "_"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _seconds(samples: int, sample_rate: int) -> str:
    return f"{samples / sample_rate:.6f}"


def _linked_files(items: list, sample_rate: int) -> dict[str, int] | None:
    """Each input file's length when every one is a 16-bit mono WAV at the rate (the items
    can then point into it), else None."""
    lengths: dict[str, int] = {}
    for meta in items:
        if meta.path in lengths:
            continue
        if not meta.path.lower().endswith(".wav") or not os.path.isfile(meta.path):
            return None
        try:
            info = sf.info(meta.path)
        except (sf.LibsndfileError, RuntimeError):
            return None
        if (info.samplerate, info.channels, info.subtype) != (sample_rate, 1, "PCM_16"):
            return None
        lengths[meta.path] = info.frames
    return lengths


class KaldiWriter(FormatWriter):
    name = "kaldi"

    def write_all(self, folder: Path | str, items: list, rows, options) -> WrittenFormat:
        folder = Path(folder)
        sr = options.sample_rate
        linked = _linked_files(items, sr)
        tables: dict[str, dict[str, str]] = {name: {} for name in TABLES}
        by_speaker: dict[str, list[str]] = defaultdict(list)
        locations = []
        for meta in items:
            speaker = kaldi_id(meta.fields["speaker"]) if "speaker" in meta.fields else None
            utt = f"{speaker}-{meta.key}" if speaker else meta.key
            speaker = speaker or utt
            end = meta.start + meta.num_samples
            if linked is not None:
                path = os.path.abspath(meta.path)
                rec = item_key(path, 0).rsplit("-", 1)[0]
                tables["reco2dur"][rec] = _seconds(linked[meta.path], sr)
                tables["segments"][utt] = f"{rec} {_seconds(meta.start, sr)} {_seconds(end, sr)}"
                location = {"wav": path, "start": meta.start}
            else:
                rel = f"wav/{key_folder(meta.key)}/{meta.key}.wav"
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                audio = encode_pcm16(rows.audio(meta)[: meta.num_samples], sr)
                location = {"wav": rel, "start": 0, "sha256": write_once(folder / rel, audio)}
                path, rec = str((folder / rel).absolute()), utt
                tables["reco2dur"][rec] = _seconds(meta.num_samples, sr)
                tables["segments"][utt] = f"{rec} 0.000000 {_seconds(meta.num_samples, sr)}"
            tables["wav.scp"][rec] = path
            tables["text"][utt] = _one_line(meta.fields.get("text", ""))
            tables["utt2spk"][utt] = speaker
            tables["utt2dur"][utt] = _seconds(meta.num_samples, sr)
            if "language" in meta.fields:
                tables["utt2lang"][utt] = kaldi_id(meta.fields["language"])
            by_speaker[speaker].append(utt)
            locations.append({**location, "utt_id": utt})
        tables["spk2utt"] = {spk: " ".join(sorted(utts)) for spk, utts in by_speaker.items()}
        if len(tables["utt2lang"]) < len(items):
            del tables["utt2lang"]  # partial: Lhotse would fail on the missing ones
        files: dict[str, dict] = {}
        for name, table in tables.items():
            with open_output(folder, name, files) as fh:
                lines = [f"{key} {value}".rstrip() + "\n" for key, value in table.items()]
                fh.write("".join(sorted(lines, key=lambda line: line.split(" ", 1)[0].encode()))
                         .encode("utf-8"))  # fmt: skip
        where = "pointing into the input WAVs" if linked is not None else "with a WAV per item"
        return WrittenFormat(locations, files, {"audio": "linked" if linked else "written"},
                             f"{len(items)} utterances, {where}")  # fmt: skip

    def verify(self, folder: Path, label: str, fmt: dict, entries: list[dict]) -> Iterator[str]:
        """Each written WAV of its recorded hash and length; each linked WAV still there
        and long enough for its items."""
        ends: dict[str, int] = {}
        for entry in entries:
            rel = entry.get("wav", "?")
            if "sha256" in entry:
                name = f"{label}/{rel}"
                problems = list(check_file(folder / rel, name, None, entry["sha256"]))
                if not problems:
                    problems = check_wav(
                        folder / rel, name, entry["num_samples"], fmt["sample_rate"]
                    )
                yield from problems
            else:
                ends[rel] = max(ends.get(rel, 0), entry.get("start", 0) + entry["num_samples"])
        for path, end in sorted(ends.items()):
            try:
                frames = sf.info(path).frames
            except (sf.LibsndfileError, RuntimeError) as exc:
                yield f"{label}: {path}, which wav.scp names, is unreadable or gone ({exc})"
                continue
            if frames < end:
                yield f"{label}: {path} has {frames} samples, its utterances reach {end}"
