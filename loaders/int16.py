"""The int16 <-> float32 scale, the same as soundfile's: float = int16 / 32768.

A module of its own, importing nothing, so the sample contract (:mod:`loaders.sample`)
and the decode path (:mod:`loaders.audio.dsp`) share it without the array readers
loading the decoders.
"""

INT16_SCALE = 32768.0
