"""Built-in codecs, one module per family, and the one ordered list a registry loads them from
(``Registry(builtins=True)``, as :data:`~h5forge.store.registry.default_registry` is).

Order matters: among predicate codecs the one registered later is asked first, so the
scientific families come after numpy, and neo (whose signals are quantities) after units.
None of the modules imports its library here: each does so only when it meets one of its
objects. A codec module imports :mod:`h5forge.store.nodes` and the store core, never a sibling.
"""

from __future__ import annotations

from h5forge.store.codecs import (
    astropy,
    builtins,
    neo,
    numpy,
    objects,
    pandas,
    scipy,
    stdlib,
    units,
    xarray,
)
from h5forge.store.registry import Codec, Registry

__all__ = ["BUILTIN_CODECS", "builtin_registry"]

#: Every built-in codec, in registration order (later ones win among predicates).
BUILTIN_CODECS: tuple[type[Codec], ...] = (
    builtins.AtomCodec, builtins.BytearrayCodec, builtins.SequenceCodec, builtins.MappingCodec,
    builtins.RangeSliceCodec, builtins.NamedTupleCodec, builtins.EnumCodec,
    numpy.ArrayCodec, numpy.MaskedArrayCodec, numpy.ScalarCodec, numpy.DTypeCodec,
    objects.ObjectCodec, objects.UnknownCodec, objects.ForeignCodec, objects.BoxCodec,
    objects.PickleCodec, objects.NamespaceCodec,
    stdlib.DateTimeCodec, stdlib.TextValueCodec, stdlib.FractionCodec,
    units.QuantitiesCodec, units.UncertainQuantityCodec, units.PintCodec,
    neo.NeoCodec,
    pandas.PandasCodec, pandas.PandasScalarCodec,
    astropy.QuantityCodec, astropy.UnitCodec, astropy.TimeCodec, astropy.ColumnCodec,
    astropy.TableCodec,
    xarray.VariableCodec, xarray.DataArrayCodec, xarray.DatasetCodec,
    scipy.SparseCodec,
)  # fmt: skip


def builtin_registry() -> Registry:
    """A new registry with the built-in codecs only (no entry points, no user codecs)."""
    return Registry(builtins=True)
