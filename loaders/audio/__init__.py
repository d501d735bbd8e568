"""Decoding any audio file to mono float32 at a target rate, in bounded blocks, in memory.

One code path for ``prep convert``, ``prep shard``, the on-the-fly loader and the noise
bank, so that audio prepared offline and audio decoded during training are the same
samples. Nothing here imports torch, and the array readers (memmap, HDF5) and the
WAV/npy readers never import this package. Its modules, by concern:

- ``base``: the interface: :class:`Decoder` (a backend's name, ``can_open``,
  ``range_reads``, ``exact_seeks``, ``open``), :class:`AudioReader`, :class:`AudioInfo`.
- ``errors``: :class:`DecodeError` (one readable line) and the checks that raise it.
- ``sniff``: what a file is before any decoder runs (its first bytes; audio names).
- ``soundfile_backend``, ``pyav_backend``, ``ffmpeg_backend``, ``gstreamer_backend``: one
  module per backend.
- ``composite``: ``auto``, which tries the backends in order; ``registry``: every backend
  by name, :func:`register_decoder` for plug-ins, and :func:`open_audio`.
- ``dsp``: mixdown, soxr resampling, float32 -> int16, :func:`load_mono`.
- ``quiet``: silencing what C libraries print on file descriptor 2.
"""
