"""Models as users hold them: load anything (:func:`load_model`) into one typed record
(:class:`LoadedModel`) whose ``field`` decodes through one interface (:class:`Decoder`, :func:`as_decoder`).

    checkpoint.py  a single field's checkpoint: write, read, rebuild
    tiled.py       a tiled checkpoint: one field per tile of each atlas, decoded as one atlas
    packed.py      an exported pack decoded by the numpy runtime
    loaded.py      LoadedModel, what loading gives
    loader.py      load_model, the one loader
    decoder.py     the Decoder protocol
"""
from airender.models.decoder import Decoder, as_decoder
from airender.models.loaded import LoadedModel
from airender.models.loader import load_model

__all__ = ["Decoder", "LoadedModel", "as_decoder", "load_model"]
