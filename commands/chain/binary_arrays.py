"""The four columns of an append, packed into PostgreSQL's binary array format by hand.

psycopg's generic list dumper inspects every list on every execute (element types, dimensions, a
dumper per element) before it writes a byte. The columns of an append always have the same four
shapes, one dimension and no NULLs, so each is written with one header and one join instead:
converting a three-event append's parameters fell from 34 to 11 µs (docs/benchmarks.md, issue 7
step 85).

Wire format (PostgreSQL's array_send): ndim, has-null flag, element type oid, then per dimension its
length and lower bound, then per element its length and bytes."""

from __future__ import annotations

import struct
import uuid
from typing import Iterable, Sequence

import psycopg
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format

_HEADER = struct.Struct("!iiIii")  # ndim, has nulls, element oid, length, lower bound


class PackedArray:
    """A one-dimensional array without NULLs, already in binary wire format. Not a `bytes`: a
    connection without our dumpers must refuse it, not send it as a bytea."""

    __slots__ = ("data",)
    element_oid = array_oid = 0

    def __init__(self, data: bytes):
        self.data = data


def _array_type(name: str, element_oid: int, array_oid: int) -> type[PackedArray]:
    return type(name, (PackedArray,), {"__slots__": (), "element_oid": element_oid, "array_oid": array_oid})


# The element type's and the array type's oids, as in pg_type.
Int8Array = _array_type("Int8Array", 20, 1016)
TextArray = _array_type("TextArray", 25, 1009)
ByteaArray = _array_type("ByteaArray", 17, 1001)
UuidArray = _array_type("UuidArray", 2950, 2951)


def _with_lengths(kind: type[PackedArray], values: Sequence[bytes]) -> PackedArray:
    header = _HEADER.pack(1, 0, kind.element_oid, len(values), 1)
    return kind(header + b"".join([len(value).to_bytes(4, "big") + value for value in values]))


def int8_array(values: Sequence[int]) -> Int8Array:
    n = len(values)
    pairs = [8] * (2 * n)  # each element: its length (8), then its value
    pairs[1::2] = values
    return Int8Array(_HEADER.pack(1, 0, Int8Array.element_oid, n, 1) + struct.pack("!" + "iq" * n, *pairs))


def text_array(values: Iterable[str]) -> TextArray:
    return _with_lengths(TextArray, [value.encode() for value in values])


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    return _with_lengths(ByteaArray, values)


def uuid_array(values: Sequence[uuid.UUID | str]) -> UuidArray:
    return _with_lengths(UuidArray, [_uuid_bytes(value) for value in values])


def _uuid_bytes(value: uuid.UUID | str) -> bytes:
    return value.bytes if isinstance(value, uuid.UUID) else uuid.UUID(value).bytes


def _dumper(kind: type[PackedArray]) -> type[Dumper]:
    class PackedArrayDumper(Dumper):
        format = Format.BINARY
        oid = kind.array_oid

        def dump(self, obj: PackedArray) -> bytes:
            return obj.data

    PackedArrayDumper.__name__ = f"{kind.__name__}Dumper"
    return PackedArrayDumper


_DUMPERS = {kind: _dumper(kind) for kind in (Int8Array, TextArray, ByteaArray, UuidArray)}


def _register(adapters) -> None:
    for kind, dumper in _DUMPERS.items():
        adapters.register_dumper(kind, dumper)


def ready(conn: psycopg.Connection) -> None:
    """Makes sure `conn` can send packed arrays. Connections take a copy of psycopg's global adapters
    when they first adapt anything, so one that did so before this module was imported (a pool
    connects in the background) lacks the global registration below."""
    try:
        conn.adapters.get_dumper(UuidArray, PyFormat.BINARY)
    except psycopg.ProgrammingError:
        _register(conn.adapters)


_register(psycopg.adapters)  # every connection that first adapts something after this import
