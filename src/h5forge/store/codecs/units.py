"""Physical quantities: ``quantities.Quantity`` (and ``UncertainQuantity``) and ``pint.Quantity``.

A quantity is stored as its magnitude -- a dataset of the magnitude's own dtype, readable with
h5py alone -- plus a ``units`` attribute holding the unit as plain text (``"mV/ms"``,
``"meter / second ** 2"``). Neither library is imported when this module is: a type is matched
only if its library is already in ``sys.modules`` (an object of it exists, so it is), and the
library is imported on load only when a stored quantity is met. Stored class names are stable
(``quantities.Quantity``, ``pint.Quantity``), not the libraries' internal module paths.

On load, a library that cannot be imported, or a unit the library does not define (a
``quantities.UnitQuantity`` or a pint unit created at run time and not defined again), gives
the magnitude as a numpy array (or scalar) with an :class:`UnknownClassWarning` naming the unit:
never a silent loss. A unit text that is not a unit expression at all is a
:class:`CorruptFileError`.

pint quantities load into pint's *application registry* (``pint.get_application_registry()``),
whatever registry they were made with: quantities of different registries cannot be combined,
and a file cannot name a registry object. A program that works with its own registry makes it
the application registry (``pint.set_application_registry(ureg)``) before loading; units defined
only there are then found too.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

from h5forge.errors import CodecError, CorruptFileError
from h5forge.store import registry
from h5forge.store.codecs._units_text import check_unit_text, quantities_text, quantities_units
from h5forge.store.nodes import (
    Decoder,
    LazyArray,
    Node,
    Stored,
    UnknownClassWarning,
    array_node,
    child_stored,
    group_node,
    read_array,
)

__all__ = ["QuantitiesCodec", "UncertainQuantityCodec", "PintCodec"]

QUANTITY = "quantities.Quantity"
UNCERTAIN = "quantities.UncertainQuantity"
PINT = "pint.Quantity"


# -- shared helpers ------------------------------------------------------------------------------
def _library(name: str):
    """The library module if it is already imported (so no import happens while encoding)."""
    return sys.modules.get(name)


def _magnitude_node(magnitude: np.ndarray, class_name: str, units: str, enc, where: str,
                    codec: registry.Codec, **attrs: Any) -> Node:
    node = array_node(magnitude, class_name, enc, where, codec)
    if node.kind != "dataset" or node.attrs.get("element_class") == "mixed":
        raise CodecError(f"cannot store {where}: a quantity's magnitude must have a numeric, "
                         f"bool, string or datetime dtype, not {magnitude.dtype}")
    node.attrs["units"] = units
    node.attrs.update(attrs)
    return node


def _read_magnitude(stored: Stored, dec: Decoder) -> np.ndarray:
    if stored.is_group:
        raise CorruptFileError(f"{stored.path}: class {stored.class_name!r} needs a dataset, "
                               f"found a group")
    arr = read_array(stored, dec)
    return arr.load() if isinstance(arr, LazyArray) else arr


def _without_library(stored: Stored, value: Any, why: str) -> Any:
    units = stored.attrs.get("units")
    warnings.warn(
        f"{stored.path}: {stored.class_name} in units {units!r} loaded as its magnitude "
        f"({registry.class_name_of(type(value))}) without the units: {why}",
        UnknownClassWarning, stacklevel=6,
    )
    return value


def _child(stored: Stored, name: str, class_name: str) -> Stored:
    child = child_stored(stored, name)
    if child.class_name != class_name:
        raise CorruptFileError(f"{child.path}: class {class_name!r} expected, found "
                               f"{child.class_name!r}")
    return child


def _is_quantities_type(tp: type) -> bool:
    pq = _library("quantities")
    return pq is not None and issubclass(tp, pq.Quantity)


class QuantitiesCodec(registry.Codec):
    """``quantities.Quantity``: the magnitude dataset with ``units`` = the dimensionality text.

    Subclasses other than ``UncertainQuantity`` (neo's have their own codec) are refused:
    their extra state would be lost. Units themselves (``pq.mV``, a ``UnitQuantity``) are
    refused too: store ``1 * pq.mV`` or the unit's text.
    """

    names = (QUANTITY,)

    def matches(self, tp):
        return _is_quantities_type(tp)

    def encode(self, obj, enc, where):
        pq = _library("quantities")
        tp = type(obj)
        if tp is not pq.Quantity:
            name = registry.class_name_of(tp)
            if isinstance(obj, pq.unitquantity.UnitQuantity):
                raise CodecError(f"cannot store {where}: {name} is a unit, not a quantity; "
                                 f"store 1 * unit, or the unit's text ({obj.symbol!r})")
            raise CodecError(f"cannot store {where}: {name} is a subclass of "
                             f"quantities.Quantity that h5forge does not know (its own state "
                             f"would be lost); register a codec for it")
        units = quantities_text(pq, obj.dimensionality, where)
        return _magnitude_node(obj.magnitude, QUANTITY, units, enc, where, self)

    def decode(self, stored, dec):
        return self.read(stored, dec)

    @staticmethod
    def read(stored: Stored, dec: Decoder) -> Any:
        text = check_unit_text(stored.attr("units"), stored.path)
        magnitude = _read_magnitude(stored, dec)
        try:
            import quantities as pq
        except ImportError as exc:
            return _without_library(stored, magnitude, f"quantities cannot be imported ({exc})")
        dimensionality, why = quantities_units(pq, text, stored.path)
        if dimensionality is None:
            return _without_library(stored, magnitude, f"{why}; create the unit "
                                    f"(quantities.UnitQuantity) before loading")
        return pq.Quantity(magnitude, dimensionality)


class UncertainQuantityCodec(registry.Codec):
    """``quantities.UncertainQuantity``: a group with the quantities nodes ``value`` and
    ``uncertainty``."""

    names = (UNCERTAIN,)

    def matches(self, tp):
        pq = _library("quantities")
        return pq is not None and issubclass(tp, pq.UncertainQuantity)

    def encode(self, obj, enc, where):
        pq = _library("quantities")
        if type(obj) is not pq.UncertainQuantity:
            raise CodecError(f"cannot store {where}: {registry.class_name_of(type(obj))} is a "
                             f"subclass of quantities.UncertainQuantity that h5forge does not "
                             f"know; register a codec for it")
        node = group_node(UNCERTAIN)
        units = quantities_text(pq, obj.dimensionality, where)
        node.add("value", _magnitude_node(obj.magnitude, QUANTITY, units, enc,
                                          f"{where}.magnitude", self))
        unc = obj.uncertainty
        node.add("uncertainty", _magnitude_node(
            unc.magnitude, QUANTITY, quantities_text(pq, unc.dimensionality, where), enc,
            f"{where}.uncertainty", self))
        return node

    def decode(self, stored, dec):
        stored.group()
        value = QuantitiesCodec.read(_child(stored, "value", QUANTITY), dec)
        uncertainty = QuantitiesCodec.read(_child(stored, "uncertainty", QUANTITY), dec)
        pq = sys.modules.get("quantities")
        if pq is None or not isinstance(value, pq.Quantity) or \
                not isinstance(uncertainty, pq.Quantity):
            # Library or units missing (warned for each part): keep both parts.
            return {"value": value, "uncertainty": uncertainty}
        if value.shape != uncertainty.shape:
            raise CorruptFileError(f"{stored.path}: value {value.shape} and uncertainty "
                                   f"{uncertainty.shape} differ in shape")
        return pq.UncertainQuantity(value, uncertainty=uncertainty, dtype=value.dtype)


# -- pint ----------------------------------------------------------------------------------------
_PY_MAGNITUDES = {"int": int, "float": float, "complex": complex}


def _pint_kind(tp: type) -> str | None:
    """``"quantity"``, ``"measurement"``, ``"unit"`` for pint's types, else None."""
    pint = _library("pint")
    if pint is None:
        return None
    facets = getattr(pint, "facets", None)
    measurement = getattr(getattr(getattr(facets, "measurement", None), "objects", None),
                          "Measurement", None)
    if measurement is not None and issubclass(tp, measurement):
        return "measurement"
    plain = getattr(facets, "plain", None)
    if issubclass(tp, getattr(plain, "PlainQuantity", pint.Quantity)):
        return "quantity"
    if issubclass(tp, getattr(plain, "PlainUnit", pint.Unit)):
        return "unit"
    return None


class PintCodec(registry.Codec):
    """``pint.Quantity`` of any registry: the magnitude dataset, ``units`` in pint's default
    text form (``format(q.units, "D")``) and ``magnitude_class`` (``numpy.ndarray``, ``float``,
    ``int``, ``complex`` or a numpy scalar type such as ``numpy.float32``)."""

    names = (PINT,)

    def matches(self, tp):
        return _pint_kind(tp) is not None

    def encode(self, obj, enc, where):
        kind = _pint_kind(type(obj))
        if kind == "unit":
            raise CodecError(f"cannot store {where}: a pint unit, not a quantity; store "
                             f"1 * unit, or the unit's text ({format(obj, 'D')!r})")
        if kind == "measurement":
            raise CodecError(f"cannot store {where}: pint Measurements (value ± error) are not "
                             f"supported; store the value and error quantities separately")
        magnitude = obj.magnitude
        mtype = type(magnitude)
        if mtype in _PY_MAGNITUDES.values():
            try:
                data = np.asarray(magnitude)
            except OverflowError:
                data = None
            if data is None or data.dtype.kind == "O":
                raise CodecError(f"cannot store {where}: pint magnitude {magnitude!r} does not "
                                 f"fit a 64-bit integer")
            magnitude_class = mtype.__name__
        elif mtype is np.ndarray or isinstance(magnitude, np.generic):
            data = np.asarray(magnitude)
            magnitude_class = registry.class_name_of(mtype)
        else:
            raise CodecError(f"cannot store {where}: pint magnitude of type "
                             f"{registry.class_name_of(mtype)} is not supported (only numpy "
                             f"arrays, numpy scalars, int, float and complex)")
        return _magnitude_node(data, PINT, format(obj.units, "D"), enc, where, self,
                               magnitude_class=magnitude_class)

    def decode(self, stored, dec):
        text = check_unit_text(stored.attr("units"), stored.path)
        magnitude = self._magnitude(stored, dec)
        try:
            import pint
        except ImportError as exc:
            return _without_library(stored, magnitude, f"pint cannot be imported ({exc})")
        ureg = pint.get_application_registry()
        try:
            units = ureg.parse_units(text, as_delta=False)  # the very units written
        except pint.errors.UndefinedUnitError as exc:
            return _without_library(
                stored, magnitude,
                f"{exc}; define it in pint's application registry, or make your registry the "
                f"application registry (pint.set_application_registry(ureg)), before loading")
        except Exception as exc:  # noqa: BLE001 - pint's parser raises many kinds of errors
            raise CorruptFileError(f"{stored.path}: 'units' attribute {text!r} is not a pint "
                                   f"unit ({type(exc).__name__}: {exc})") from None
        return ureg.Quantity(magnitude, units)

    @staticmethod
    def _magnitude(stored: Stored, dec: Decoder) -> Any:
        name = stored.attrs.get("magnitude_class", "numpy.ndarray")
        arr = _read_magnitude(stored, dec)
        if name == "numpy.ndarray":
            return arr
        if arr.ndim != 0:
            raise CorruptFileError(f"{stored.path}: magnitude_class {name!r} needs a 0-d "
                                   f"dataset, found shape {arr.shape}")
        if name in _PY_MAGNITUDES:
            value = arr[()].item()
            if type(value) is not _PY_MAGNITUDES[name]:
                raise CorruptFileError(f"{stored.path}: magnitude_class {name!r} but the data "
                                       f"is {arr.dtype}")
            return value
        value = arr[()]
        if not isinstance(name, str) or registry.class_name_of(type(value)) != name:
            raise CorruptFileError(f"{stored.path}: magnitude_class {name!r} does not match "
                                   f"the data ({arr.dtype})")
        return value

