"""The structure of a ROOT file read straight from its bytes: header, directories, keys.

Why our own reader: the array work of processing is small next to uproot's
building a Python model of every directory and key (and then of every object,
see :mod:`processing.ingest.decode`). This module walks the file header, the
top directory and every subdirectory, reads each key list once and
decompresses an object's bytes; nothing else. It follows ROOT's on-disk format
(``TFile``, ``TDirectoryFile``, ``TKey`` headers, 32- or 64-bit seeks; the
compression blocks of ``R__zip``: ``ZL`` zlib, inflated by ISA-L (1.7 times
faster than the standard library's zlib on snapshot objects), ``XZ`` lzma,
``L4`` lz4 with an xxhash64 checksum, ``ZS`` zstd).

What it lists is what :func:`overwatch.rootio.list_keys` lists (same paths
``dir/sub/name``, highest cycle of each name, same order), with the checks of
:func:`overwatch.rootio.check_key_list` applied to every key list. Anything it
does not handle or finds inconsistent raises :class:`FormatError`; the caller
then reads the file with uproot exactly as before, so damaged files keep
uproot's behaviour and messages.
"""

from __future__ import annotations

import lzma
import struct
from dataclasses import dataclass

import cramjam
import xxhash
from isal import isal_zlib

_FILE_SMALL = struct.Struct(">4siiiiiiiBiii")  # magic ... fSeekInfo, fNbytesInfo
_FILE_BIG = struct.Struct(">4siiqqiiiBiqi")
_DIRECTORY_SMALL = struct.Struct(">hIIiiiii")  # version, dates, fNbytesKeys, fNbytesName, seeks
_DIRECTORY_BIG = struct.Struct(">hIIiiqqq")
_KEY_SMALL = struct.Struct(">ihiIhhii")  # fNbytes fVersion fObjlen fDatime fKeylen fCycle seeks
_KEY_BIG = struct.Struct(">ihiIhhqq")
_COUNT = struct.Struct(">i")
_CHECKSUM = struct.Struct(">Q")
_DIRECTORY_CLASSES = ("TDirectory", "TDirectoryFile")


class FormatError(ValueError):
    """Bytes this reader does not handle (or finds inconsistent): read them with uproot."""


@dataclass(frozen=True, slots=True)
class Key:
    """One object's key: where its record is and what it holds."""

    path: str
    class_name: str
    cycle: int
    nbytes: int  # the whole record: key header and (compressed) object
    objlen: int  # the object's uncompressed length
    keylen: int
    seek: int  # where the record starts
    listed_at: int  # where this key's header sits in its directory's key list


def _string(data: bytes, at: int) -> tuple[str, int]:
    """A ROOT string (one length byte, or 255 and a 4-byte length) and the position after it."""
    length = data[at]
    at += 1
    if length == 255:
        (length,) = _COUNT.unpack_from(data, at)
        at += 4
    end = at + length
    if end > len(data):
        raise FormatError("a string runs past the end of the file")
    return data[at:end].decode("utf-8", "surrogateescape"), end


def _key(data: bytes, at: int, prefix: str) -> tuple[Key, int]:
    """The key header at ``at`` and the position after it."""
    fields = _KEY_SMALL.unpack_from(data, at)
    if fields[1] > 1000:  # a 64-bit key
        fields, after = _KEY_BIG.unpack_from(data, at), at + _KEY_BIG.size
    else:
        after = at + _KEY_SMALL.size
    nbytes, _, objlen, _, keylen, cycle, seek, _ = fields
    class_name, after = _string(data, after)
    name, after = _string(data, after)
    _, after = _string(data, after)  # the title
    key = Key(f"{prefix}{name}", class_name, cycle, nbytes, objlen, keylen, seek, at)
    return key, after


def _directory_keys(data: bytes, at: int, prefix: str, end: int) -> list[Key]:
    """Every key of the directory record at ``at``, with ``check_key_list``'s checks.

    ``end`` is the file's length as its header says (fEND): no key points past it.
    """
    fields = _DIRECTORY_SMALL.unpack_from(data, at)
    if fields[0] > 1000:
        fields = _DIRECTORY_BIG.unpack_from(data, at)
    nbytes_keys, seek_keys = fields[3], fields[7]
    if seek_keys == 0:
        return []  # never given a key list: empty by construction
    head, position = _key(data, seek_keys, "")
    if head.nbytes != nbytes_keys or not 0 < head.keylen < nbytes_keys:
        raise FormatError("damaged key list header")
    (count,) = _COUNT.unpack_from(data, seek_keys + head.keylen)
    if count < 0:
        raise FormatError("damaged key list: negative count")
    position = seek_keys + head.keylen + 4
    used = head.keylen + 4
    keys = []
    for _ in range(count):
        # Like uproot, move past the fields read (older ROOT wrote fKeylen of a
        # directory's key for the class name "TDirectory", not "TDirectoryFile").
        key, after = _key(data, position, prefix)
        used += key.keylen
        position = after
        if not (key.path != prefix and 0 < key.keylen <= key.nbytes and 0 < key.seek < end):
            raise FormatError(f"damaged key {key.path!r}")
        keys.append(key)
    if used > nbytes_keys:
        raise FormatError("damaged key list: more keys than its record holds")
    return keys


def _walk(data: bytes, at: int, prefix: str, end: int, out: list[Key], depth: int) -> None:
    if depth > 64:
        raise FormatError("directories nested too deep")
    newest: dict[str, Key] = {}
    for key in _directory_keys(data, at, prefix, end):
        current = newest.get(key.path)
        if current is None or key.cycle > current.cycle:
            newest[key.path] = key
    for path, key in newest.items():
        if key.class_name in _DIRECTORY_CLASSES:
            _walk(data, key.seek + key.keylen, path + "/", end, out, depth + 1)
        else:
            out.append(key)


def list_keys(data: bytes) -> list[Key]:
    """Every object key of a whole file's bytes, recursively; FormatError if anything is odd."""
    try:
        fields = _FILE_SMALL.unpack_from(data, 0)
        if fields[0] != b"root":
            raise FormatError("not a ROOT file")
        if fields[1] >= 1_000_000:
            fields = _FILE_BIG.unpack_from(data, 0)
        begin, end, nbytes_name = fields[2], fields[3], fields[7]
        if end > len(data):
            raise FormatError("truncated file")
        out: list[Key] = []
        _walk(data, begin + nbytes_name, "", end, out, 0)
        return out
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise FormatError(f"unreadable structure: {error}") from error


def object_bytes(data: bytes, key: Key) -> bytes:
    """The uncompressed bytes of a key's object; FormatError if they cannot be had."""
    start, stop = key.seek + key.keylen, key.seek + key.nbytes
    if not 0 < start <= stop <= len(data) or key.objlen < 0:
        raise FormatError(f"{key.path}: record outside the file")
    if stop - start == key.objlen:
        return data[start:stop]
    view = memoryview(data)
    blocks, position = [], start
    try:
        while position < stop:
            header = data[position : position + 9]
            if len(header) < 9:
                raise FormatError(f"{key.path}: cut compression block")
            size = header[3] | header[4] << 8 | header[5] << 16
            expected = header[6] | header[7] << 8 | header[8] << 16
            body = view[position + 9 : position + 9 + size]
            if len(body) != size or position + 9 + size > stop:
                raise FormatError(f"{key.path}: compression block past the record")
            blocks.append(_decompress(header[:2], body, expected, key))
            position += 9 + size
    except (isal_zlib.error, lzma.LZMAError, cramjam.DecompressionError) as error:
        raise FormatError(f"{key.path}: {error}") from error
    out = b"".join(blocks)
    if len(out) != key.objlen:
        raise FormatError(f"{key.path}: {len(out)} bytes decompressed, the key says {key.objlen}")
    return out


def _decompress(algorithm: bytes, body: memoryview, expected: int, key: Key) -> bytes:
    if algorithm == b"ZL":
        out = isal_zlib.decompress(body, bufsize=expected)
    elif algorithm == b"XZ":
        out = lzma.decompress(body)
    elif algorithm == b"L4":
        (checksum,) = _CHECKSUM.unpack_from(body, 0)
        block = body[8:]
        if xxhash.xxh64(block).intdigest() != checksum:
            raise FormatError(f"{key.path}: lz4 block checksum differs")
        out = bytes(cramjam.lz4.decompress_block(block, output_len=expected))
    elif algorithm == b"ZS":
        out = bytes(cramjam.zstd.decompress(body, output_len=expected))
    else:
        raise FormatError(f"{key.path}: compression {bytes(algorithm)!r} not handled")
    if len(out) != expected:
        raise FormatError(f"{key.path}: a block decompressed to {len(out)} bytes, not {expected}")
    return out
