"""The four columns of an append, packed into PostgreSQL's binary array format by hand.

psycopg's generic list dumper inspects every list on every execute (element types, dimensions, a
dumper per element) before it writes a byte. The columns of an append always have the same four
shapes, one dimension and no NULLs, so each is written with one header and one join instead:
converting a three-event append's parameters fell from 34 to 11 us (docs/benchmarks.md, issue 7
step 85).

Wire format (PostgreSQL's array_send): ndim, has-null flag, element type oid, then per dimension its
length and lower bound, then per element its length and bytes."""

from __future__ import annotations

import struct
import uuid
from typing import Iterable, Sequence

from psycopg import adapters
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct("!iiIii")  # ndim, has nulls, element oid, length, lower bound
_INT8, _TEXT, _BYTEA, _UUID = 20, 25, 17, 2950
_LENGTH_16 = (16).to_bytes(4, "big")  # every uuid element
_ARRAY_OF = {_INT8: 1016, _TEXT: 1009, _BYTEA: 1001, _UUID: 2951}


class PackedArray(bytes):
    """A one-dimensional array without NULLs, already in binary wire format."""

    element_oid = 0


class Int8Array(PackedArray):
    element_oid = _INT8


class TextArray(PackedArray):
    element_oid = _TEXT


class ByteaArray(PackedArray):
    element_oid = _BYTEA


class UuidArray(PackedArray):
    element_oid = _UUID


def _with_lengths(kind: type[PackedArray], values: Sequence[bytes]) -> PackedArray:
    header = _HEADER.pack(1, 0, kind.element_oid, len(values), 1)
    return kind(header + b"".join([len(value).to_bytes(4, "big") + value for value in values]))


def int8_array(values: Sequence[int]) -> Int8Array:
    n = len(values)
    return Int8Array(_HEADER.pack(1, 0, _INT8, n, 1) + struct.pack("!" + "iq" * n, *_pairs(8, values)))


def text_array(values: Iterable[str]) -> TextArray:
    return _with_lengths(TextArray, [value.encode() for value in values])


def bytea_array(values: Sequence[bytes]) -> ByteaArray:
    return _with_lengths(ByteaArray, values)


def uuid_array(values: Sequence[uuid.UUID | str]) -> UuidArray:
    header = _HEADER.pack(1, 0, _UUID, len(values), 1)
    return UuidArray(header + b"".join([_LENGTH_16 + _uuid_bytes(value) for value in values]))


def _uuid_bytes(value: uuid.UUID | str) -> bytes:
    return value.bytes if isinstance(value, uuid.UUID) else uuid.UUID(value).bytes


def _pairs(size: int, values: Sequence[int]) -> list[int]:
    pairs = [size] * (2 * len(values))
    pairs[1::2] = values
    return pairs


def _dumper(kind: type[PackedArray]) -> type[Dumper]:
    class PackedArrayDumper(Dumper):
        format = Format.BINARY
        oid = _ARRAY_OF[kind.element_oid]

        def dump(self, obj: PackedArray) -> bytes:
            return obj

    PackedArrayDumper.__name__ = f"{kind.__name__}Dumper"
    return PackedArrayDumper


for _kind in (Int8Array, TextArray, ByteaArray, UuidArray):
    # Registered globally: only these private types use them, so no other parameter is affected.
    adapters.register_dumper(_kind, _dumper(_kind))
