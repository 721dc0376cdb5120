"""The append's hand-packed array columns decode, with psycopg's own binary loaders, to what was packed."""

from __future__ import annotations

import struct
import uuid

import pytest
from psycopg.adapt import Transformer
from psycopg.pq import Format

from commands.chain.binary_arrays import bytea_array, int8_array, text_array, uuid_array

INT8_ARRAY, TEXT_ARRAY, BYTEA_ARRAY, UUID_ARRAY = 1016, 1009, 1001, 2951


def decoded(oid: int, packed) -> list:
    return Transformer().get_loader(oid, Format.BINARY).load(packed.data)


@pytest.mark.parametrize("values", [[0], [1, -1, 2**63 - 1, -(2**63)], list(range(100))])
def test_int8_arrays(values):
    assert decoded(INT8_ARRAY, int8_array(values)) == values


def test_text_arrays_are_utf8():
    values = ["iotcloud.commands:DeviceCommand.Requested", "", "ünïcödé ✓"]
    assert decoded(TEXT_ARRAY, text_array(values)) == values


def test_bytea_arrays_keep_every_byte():
    values = [b"", bytes(range(256)), b'{"a":1}' * 1000]
    assert decoded(BYTEA_ARRAY, bytea_array(values)) == values


def test_uuid_arrays_take_uuids_or_their_text():
    ids = [uuid.uuid4(), uuid.uuid4()]
    assert decoded(UUID_ARRAY, uuid_array([ids[0], str(ids[1])])) == ids


def test_a_value_out_of_range_is_refused_not_truncated():
    with pytest.raises(struct.error):
        int8_array([2**63])
