r"""Input files: plain logs, logs re-saved as UTF-16, and logs in ``.gz``, ``.zip``, ``.7z`` and
tar archives (``.tar``, ``.tar.gz``, ``.tgz``...).

A log inside an archive is named ``archive.zip!member/path.LOG``. Archives are read as streams
(never whole into memory) and are complete by nature, so their logs are final. An archive whose
content would expand beyond ``MAX_RATIO`` times its size, or beyond ``MAX_BYTES``, is refused as
a decompression bomb before anything is read; a stream that expands beyond what its header
declared is stopped.

Paths reach the OS as given, except on Windows, where a path longer than ``MAX_PATH`` gets its
``\\?\`` prefix (``os_path``), and plain logs are opened sharing read, write and delete
(``open_shared``): Exchange's transport service holds its current log open for writing, and
removes old logs while they may be read.
"""

from __future__ import annotations

import functools
import gzip
import io
import ntpath
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from loganalyzer.schema import MEMBER_SEP as SEP  # archive.zip!member/path.LOG

MAX_RATIO = 200  # logs compress about 10-20x; far more means a bomb
MAX_BYTES = 64 << 30  # no single log expands beyond 64 GiB
ARCHIVES = (".zip", ".gz", ".7z", ".tar", ".tgz", ".tbz2", ".txz")
#: Names of tar archives, compressed or not (``tarfile`` tells which from the content).
TARS = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
WINDOWS = sys.platform == "win32"
#: Paths from this length on reach Windows with the long-path prefix (MAX_PATH is 260 with its
#: terminating NUL, and a folder's path must leave room for an 8.3 file name).
LONG_PATH = 248
#: Windows errors of a file another program holds open without sharing it: it can be read
#: later (ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION).
_BUSY = (32, 33)


class BombError(OSError):
    """An archive that would expand beyond any real log."""


@dataclass
class Source:
    """One log to read: its name, its (uncompressed) size and whether it can still grow."""

    name: str
    size: int
    archived: bool = False


def os_path(name: str, windows: bool = WINDOWS) -> str:
    """``name`` as the OS must be given it: on Windows, a path of ``LONG_PATH`` characters or
    more as an absolute ``\\\\?\\`` path (``\\\\?\\UNC\\`` for a share); anything else as it is."""
    if not windows or len(name) < LONG_PATH or name.startswith("\\\\?\\"):
        return name
    full = ntpath.abspath(name)  # backslashes, no "." or "..": the prefix turns off parsing
    if full.startswith("\\\\"):
        return "\\\\?\\UNC\\" + full[2:]
    return "\\\\?\\" + full


def user_path(name: str) -> str:
    """``name`` without the long-path prefix ``os_path`` adds: as the user wrote it."""
    if name.startswith("\\\\?\\UNC\\"):
        return "\\\\" + name[8:]
    return name[4:] if name.startswith("\\\\?\\") else name


def busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another program holds the file open without sharing it."""
    return getattr(exc, "winerror", None) in _BUSY


def open_shared(path: str | os.PathLike[str]) -> BinaryIO:
    """A file opened for reading that other programs may go on writing, rename and delete."""
    if not WINDOWS:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it; POSIX shares always
    import ctypes
    import msvcrt
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    create = kernel32.CreateFileW
    create.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID]
    create.argtypes += [wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
    create.restype = wintypes.HANDLE
    # GENERIC_READ; FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE; OPEN_EXISTING;
    # FILE_FLAG_SEQUENTIAL_SCAN (Python's open() shares no delete: Exchange could not remove
    # an old log while it is read)
    handle = create(os_path(os.fspath(path)), 0x80000000, 7, None, 3, 0x08000000, None)
    if handle in (None, wintypes.HANDLE(-1).value):
        exc = ctypes.WinError(ctypes.get_last_error())
        exc.filename = os.fspath(path)
        raise exc
    return open(msvcrt.open_osfhandle(handle, os.O_RDONLY | os.O_BINARY), "rb")  # noqa: SIM115


def is_archive(path: PurePath) -> bool:
    """An archive or a compressed log, by its name."""
    return path.suffix.lower() in ARCHIVES


def is_tar(path: Path) -> bool:
    """A tar archive by its name (a ``.tar.gz`` is not one gzipped log)."""
    return path.name.lower().endswith(TARS)


def _check_ratio(name: str, packed: int, size: int) -> None:
    if size > MAX_BYTES or (size > 1 << 20 and size > packed * MAX_RATIO):
        raise BombError(
            f"refused: {name} would expand to {size:,} bytes from {packed:,} "
            "(a decompression bomb, not a log archive)"
        )


def expand(name: Path) -> list[Source]:
    """The logs a path holds: itself, or the members of an archive."""
    path = Path(os_path(str(name)))  # what the OS is given; the names keep the user's form
    suffix = path.suffix.lower()
    if is_tar(path):
        try:
            with tarfile.open(path) as tf:
                infos = [i for i in tf.getmembers() if i.isfile()]
        except tarfile.TarError as exc:
            raise OSError(f"{name}: damaged tar archive ({exc})") from None
        _check_ratio(str(name), max(1, path.stat().st_size), sum(i.size for i in infos))
        return [Source(f"{name}{SEP}{i.name}", i.size, True) for i in infos]
    if suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            total = sum(i.file_size for i in infos)
            _check_ratio(str(name), max(1, path.stat().st_size), total)
            for i in infos:
                _check_ratio(f"{name}{SEP}{i.filename}", max(1, i.compress_size), i.file_size)
            return [Source(f"{name}{SEP}{i.filename}", i.file_size, True) for i in infos]
    if suffix == ".gz":
        return [Source(str(name), _gzip_size(path, str(name)), True)]
    if suffix == ".7z":
        py7zr = _py7zr()
        with py7zr.SevenZipFile(path) as archive:
            infos = [i for i in archive.list() if not i.is_directory]
        total = sum(i.uncompressed for i in infos)
        _check_ratio(str(name), max(1, path.stat().st_size), total)
        return [Source(f"{name}{SEP}{i.filename}", i.uncompressed, True) for i in infos]
    with open_shared(path) as fh:
        st = os.fstat(fh.fileno())
        if _utf16(fh.read(2)):  # re-saved as "Unicode" (an export): read as UTF-8, sized so
            # too, so that it is read on as it grows and a half-written last line waits
            return [Source(str(name), _text_size(str(path), st.st_size, st.st_mtime_ns))]
    return [Source(str(name), st.st_size)]


@functools.lru_cache(maxsize=4096)
def _text_size(path: str, size: int, mtime_ns: int) -> int:
    """The size of a UTF-16 file read as UTF-8 bytes: ingest records how far it read a file in
    the bytes it reads (``open_source``), so its size must count the same bytes; two bytes per
    character would differ from them by every non-ASCII character and the byte-order mark.
    Kept by the file's size and time (``size``, ``mtime_ns``): watch asks at every round."""
    total, chunk = 0, bytearray(1 << 20)
    with _Utf8(path) as text:
        while n := text.readinto(chunk):
            total += n
    return total


def _utf16(head: bytes) -> bool:
    return head[:2] in (b"\xff\xfe", b"\xfe\xff")


class _Utf8(io.RawIOBase):
    """A UTF-16 file read as UTF-8 bytes (its byte-order mark dropped)."""

    def __init__(self, path: Path) -> None:
        import codecs

        self.reader = codecs.getreader("utf-16")(open_shared(path), errors="replace")
        self.pending, self.at = b"", 0  # UTF-8 bytes decoded and not yet read from ``at`` on

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.at >= len(self.pending):
            # a chunk of characters at a time: the caller's buffer is filled from it, and
            # the next chunk is decoded when it is used up (no copying of what is left)
            text = self.reader.read(1 << 18)
            self.pending, self.at = text.encode("utf-8"), 0
        n = min(len(buffer), len(self.pending) - self.at)
        buffer[:n] = self.pending[self.at : self.at + n]
        self.at += n
        return n

    def close(self) -> None:
        self.reader.close()
        super().close()


def _py7zr():
    try:
        import py7zr
    except ImportError:
        raise OSError("reading .7z archives needs py7zr: pip install 'loganalyzer[7z]'") from None
    return py7zr


def _gzip_size(path: Path, name: str) -> int:
    """The size gzip records for its content (modulo 4 GiB), checked against the ratio."""
    packed = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            raise OSError(f"{name}: not a gzip file")
        fh.seek(-4, os.SEEK_END)
        size = int.from_bytes(fh.read(4), "little")
    try:
        _check_ratio(name, packed, size)
    except BombError:
        _probe_gzip(path, name, packed)  # the trailer of a cut or damaged file is any 4 bytes
        raise
    return size


def _probe_gzip(path: Path, name: str, packed: int) -> None:
    """Raises ``OSError`` naming the damage when a gzip file whose trailer declares a bomb is
    truncated or corrupt; returns when it really expands beyond the allowed ratio."""
    allowed = packed * MAX_RATIO
    try:
        with gzip.open(path, "rb") as gz:
            seen = 0
            while chunk := gz.read(1 << 20):
                seen += len(chunk)
                if seen > allowed:
                    return
    except EOFError:
        raise OSError(f"{name}: truncated archive (it ends before its end)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise OSError(f"{name}: damaged archive ({exc})") from None
    raise OSError(f"{name}: damaged archive (its trailer does not match its content)")


class _Stream(io.RawIOBase):
    """A decompressing stream that stops past ``limit`` bytes and seeks by reading on (or by
    starting again, for a seek backwards)."""

    def __init__(self, opener, limit: int, name: str) -> None:
        self.opener, self.limit, self.name = opener, limit, name
        self.raw, self.pos = opener(), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def _read(self, n: int) -> bytes:
        try:
            return self.raw.read(n)
        except EOFError:
            raise OSError(f"{self.name}: truncated archive (it ends before its end)") from None
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise OSError(f"{self.name}: damaged archive ({exc})") from None

    def readinto(self, buffer) -> int:
        data = self._read(len(buffer))
        self.pos += len(data)
        if self.pos > self.limit:
            raise BombError(f"refused: {self.name} expands beyond what its archive declares")
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.pos + offset}.get(whence)
        if target is None:
            raise io.UnsupportedOperation("seek from the end of a compressed stream")
        if target < self.pos:
            self.raw.close()
            self.raw, self.pos = self.opener(), 0
        while self.pos < target:
            chunk = self._read(min(1 << 20, target - self.pos))
            if not chunk:
                break
            self.pos += len(chunk)
        return self.pos

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_source(name: str) -> BinaryIO:
    """A readable, seekable binary stream of the log ``name`` (see ``expand``)."""
    archive, sep, member = name.partition(SEP)
    path = Path(os_path(archive if sep else name))
    suffix = path.suffix.lower()
    if sep and is_tar(path):
        with tarfile.open(path) as tf:
            size = tf.getmember(member).size
        return _buffered(_Stream(lambda: _TarMember(path, member), size + 1024, name))
    if sep and suffix == ".zip":
        zf = zipfile.ZipFile(path)
        info = zf.getinfo(member)
        return _buffered(_Stream(lambda: zf.open(info), info.file_size + 1024, name))
    if suffix == ".gz" and not sep:
        size = _gzip_size(path, name)
        limit = size + (1 << 32) if size < 1 << 20 else size * 2  # the size is modulo 4 GiB
        return _buffered(_Stream(lambda: gzip.open(path, "rb"), min(limit, MAX_BYTES), name))
    if sep and suffix == ".7z":
        return _from_7z(path, member)
    plain = open_shared(path)  # the caller closes it
    if _utf16(plain.read(2)):
        plain.close()
        return _buffered(_Stream(lambda: _Utf8(path), MAX_BYTES, name))
    plain.seek(0)
    return plain


class _TarMember(io.RawIOBase):
    """One member of a tar archive, read as a stream (the archive closed with it)."""

    def __init__(self, path: Path, member: str) -> None:
        self.tar = tarfile.open(path)  # noqa: SIM115 (closed with the member, by close())
        try:
            self.member = self.tar.extractfile(member)
        except (KeyError, tarfile.TarError) as exc:
            self.tar.close()
            raise OSError(f"{path}{SEP}{member}: not in its archive ({exc})") from None
        if self.member is None:
            self.tar.close()
            raise OSError(f"{path}{SEP}{member}: not a file")

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return self.member.read(n)
        except tarfile.TarError as exc:
            raise OSError(f"damaged tar archive ({exc})") from None

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.member.close()
        self.tar.close()
        super().close()


def _buffered(raw: io.RawIOBase) -> BinaryIO:
    return io.BufferedReader(raw, buffer_size=1 << 20)


def _from_7z(path: Path, member: str) -> BinaryIO:
    """A 7z member, extracted to a temporary file (py7zr has no streaming reader)."""
    py7zr = _py7zr()

    tmp = Path(tempfile.mkdtemp(prefix="loganalyzer-7z-"))
    try:
        with py7zr.SevenZipFile(path) as archive:
            archive.extract(path=tmp, targets=[member])
        out = open(tmp / member, "rb")  # noqa: SIM115 - the caller closes it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the open file stays readable on POSIX
    return out


def read_head(name: str, n: int) -> bytes:
    with open_source(name) as fh:
        return fh.read(n)
