"""rosbag2 bags: writing, reading, recording from topics and playing back onto topics.

Built on the pure-Python `rosbags` library; the bags are rosbag2 version 9 (MCAP by default,
sqlite3 optional) with the message definitions and RIHS01 type hashes of the installed ROS 2
(Kilted) messages, so `ros2 bag info/play` reads them. Messages are stored as the CDR bytes
rclpy serialises or receives (`raw=True` subscriptions); nothing is deserialised on the way.

- `BagWriter`: a context manager that writes messages (rclpy messages or CDR bytes). It closes
  the bag properly (index, summary, metadata.yaml) when its block raises, on SIGINT and SIGTERM
  and at interpreter exit. A SIGKILL (or power loss) cannot be handled: the MCAP file then lacks
  its summary and up to the last ~1 MiB chunk of messages, and metadata.yaml is missing (sqlite3
  loses the whole uncommitted transaction).
- `open_bag` / `BagReader`: topics, counts and time range; raw or deserialised messages. Errors
  are `BagNotFoundError`, `NotABagError`, `CorruptBagError`, `UnknownTopicError`, all
  `BagError`s with a message that names the path or topic.
- `salvage_mcap`: the complete messages of an MCAP file that cannot be opened (killed while
  recording, cut short), read front to back without its index.
- `record(...)`: an rclpy node that subscribes (raw) to the requested topics, or all, as they
  appear, with QoS adapted to their publishers (latched topics are recorded), and writes what it
  receives with receive timestamps until a stop event, a duration, SIGINT or SIGTERM.
- `play(...)`: publishes the raw bytes with the bag's timing divided by `rate` on a monotonic
  schedule (no drift), optionally `/clock` carrying bag time, optionally looping.
- `add_bag_arguments(subparsers)`: the `record` and `play` commands of `wm-ros bag`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import signal
import sqlite3
import struct
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Nodetype, Qos
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosgraph_msgs.msg import Clock

from wm_ros.ros.conversions import ns_to_time
from wm_ros.ros.qos import from_bag_qos, latched_qos, recorder_qos, reliable_qos, to_bag_qos
from wm_ros.ros.spin import rclpy_handles_signals, stop_on_signals

__all__ = [
    "STORAGES",
    "BagError",
    "BagMessage",
    "BagNotFoundError",
    "BagReader",
    "BagWriter",
    "CorruptBagError",
    "MessageTypeError",
    "NotABagError",
    "PlaySummary",
    "RecordSummary",
    "SalvagedBag",
    "TopicInfo",
    "UnknownTopicError",
    "add_bag_arguments",
    "import_message_type",
    "message_type_name",
    "open_bag",
    "play",
    "record",
    "salvage_mcap",
]

log = logging.getLogger(__name__)

STORAGES = ("mcap", "sqlite3")
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy/Kilted


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class BagError(Exception):
    """Base class of the bag errors; the message names the bag path or topic."""


class BagNotFoundError(BagError, FileNotFoundError):
    """The bag path does not exist."""


class NotABagError(BagError):
    """The path exists but is not a rosbag2 bag (no metadata.yaml, unknown file type)."""


class CorruptBagError(BagError):
    """The bag is truncated or corrupt (unreadable metadata, index or storage file)."""


class UnknownTopicError(BagError, LookupError):
    """A requested topic is not in the bag."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class MessageTypeError(BagError):
    """A message type is not installed (its Python package cannot be imported) or unknown."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


# Errors that the rosbags readers and the storages raise on damaged files.
_READ_ERRORS = (ReaderError, sqlite3.DatabaseError, struct.error, EOFError, UnicodeDecodeError)


# --------------------------------------------------------------------------------------------
# Message types
# --------------------------------------------------------------------------------------------


def _split_type(msgtype: str) -> tuple[str, str]:
    parts = msgtype.split("/")
    if len(parts) == 3 and parts[1] == "msg" and all(parts):
        return parts[0], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise MessageTypeError(f"malformed message type {msgtype!r}; expected 'pkg/msg/Name'")


def import_message_type(msgtype: str) -> type:
    """The rclpy message class of a type string such as 'sensor_msgs/msg/Image'.

    Raises:
        MessageTypeError: the type string is malformed or its package is not installed.
    """
    pkg, name = _split_type(msgtype)
    try:
        module = importlib.import_module(f"{pkg}.msg")
    except ImportError as err:
        raise MessageTypeError(
            f"message type {msgtype!r} is not installed: cannot import {pkg}.msg ({err}); "
            f"install it, e.g. `pip install ros-{pkg.replace('_', '-')}`"
        ) from None
    cls = getattr(module, name, None)
    if cls is None:
        raise MessageTypeError(f"message type {msgtype!r}: {pkg}.msg has no {name}")
    return cls


def message_type_name(msg_or_cls: Any) -> str:
    """'pkg/msg/Name' of an rclpy message instance or class."""
    cls = msg_or_cls if isinstance(msg_or_cls, type) else type(msg_or_cls)
    pkg = cls.__module__.split(".")[0]
    return f"{pkg}/msg/{cls.__name__}"


_TYPESTORE = None
_TYPESTORE_LOCK = threading.Lock()


def _typestore():
    global _TYPESTORE  # noqa: PLW0603 (one lazily built, shared registry of definitions)
    with _TYPESTORE_LOCK:
        if _TYPESTORE is None:
            _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
        return _TYPESTORE


def _share_dirs(pkg: str) -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    return [Path(p) / "share" / pkg for p in prefixes]


def _installed_file(msgtype: str, suffix: str) -> Path | None:
    pkg, name = _split_type(msgtype)
    for share in _share_dirs(pkg):
        path = share / "msg" / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _field_type_names(fields) -> Iterator[str]:
    for _, (node, detail) in fields:
        if node == Nodetype.NAME:
            yield detail
        elif node in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            yield detail[0][1]


def _register_installed(typestore, msgtype: str) -> None:
    """Add a type missing from the rosbags typestore from the installed `.msg` files."""
    found: dict = {}
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in typestore.fielddefs or name in found:
            continue
        path = _installed_file(name, ".msg")
        if path is None:
            raise MessageTypeError(
                f"no definition for message type {name!r}: not in the ROS 2 Kilted typestore "
                f"and no share/{_split_type(name)[0]}/msg/{_split_type(name)[1]}.msg installed"
            )
        types = get_types_from_msg(path.read_text(), name)
        found.update(types)
        for fields in types.values():
            pending.extend(_field_type_names(fields[1]))
    typestore.register(found)


def _type_definition(msgtype: str) -> tuple[str, str]:
    """(rosbag2 message definition text, RIHS01 hash) of a type."""
    typestore = _typestore()
    with _TYPESTORE_LOCK:
        if msgtype not in typestore.fielddefs:
            _register_installed(typestore, msgtype)
        msgdef, _ = typestore.generate_msgdef(msgtype, ros_version=2)
        rihs01 = typestore.hash_rihs01(msgtype)
    # The installed type description is authoritative for the hash when there is one.
    description = _installed_file(msgtype, ".json")
    if description is not None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            hashes = json.loads(description.read_text())["type_hashes"]
            rihs01 = next(h["hash_string"] for h in hashes if h["type_name"] == msgtype)
    return msgdef, rihs01


# --------------------------------------------------------------------------------------------
# Signal safety for writers
# --------------------------------------------------------------------------------------------


class _SignalGuard:
    """Turns SIGINT/SIGTERM into exceptions that never land in the middle of a write.

    While at least one BagWriter is open in a process that has Python's default handlers (and
    no rclpy handlers), SIGINT raises KeyboardInterrupt and SIGTERM raises SystemExit(143) in
    the main thread, so `with` blocks unwind and writers close. A signal that arrives while the
    main thread is inside `BagWriter.write` or `close` is deferred to the end of that call, so a
    message or the index is never half-written. Handlers someone else installed (rclpy,
    `record`, the application) are left alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: dict[int, Any] = {}
        self._busy = 0  # main-thread writes/closes in progress
        self._pending: int | None = None

    def _handler(self, signum: int, _frame) -> None:
        if self._busy:
            self._pending = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    def enter(self) -> bool:
        """Start a write/close; True when it runs in the main thread (signals are deferred)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._busy += 1
        return True

    def exit(self, entered: bool) -> None:
        """End a write/close; raise a signal that arrived meanwhile."""
        if not entered:
            return
        self._busy -= 1
        if not self._busy and self._pending is not None:
            signum, self._pending = self._pending, None
            self._raise(signum)

    def acquire(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with self._lock:
            self._users += 1
            if self._users > 1 or rclpy_handles_signals():
                return
            defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
            for signum, default in defaults.items():
                if signal.getsignal(signum) is default:
                    self._saved[signum] = signal.signal(signum, self._handler)

    def release(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            # If rclpy installed its handlers meanwhile they chain to ours: keep ours then.
            if not rclpy_handles_signals():
                for signum, previous in self._saved.items():
                    if signal.getsignal(signum) == self._handler:
                        signal.signal(signum, previous)
            self._saved.clear()


_GUARD = _SignalGuard()
_OPEN_WRITERS: weakref.WeakSet[BagWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    for writer in list(_OPEN_WRITERS):
        with contextlib.suppress(BagError, OSError, WriterError):
            writer.close()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class BagWriter:
    """Writes a rosbag2 bag (version 9, MCAP or sqlite3) message by message.

    Use as a context manager; the bag is created (and must not exist yet) on construction::

        with BagWriter("episode_0", storage="mcap") as bag:
            bag.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
            bag.write("/camera/image_raw", stamp_ns, image_msg_or_cdr_bytes)

    The bag is always closed properly (chunk index, summary, metadata.yaml): at the end of the
    block, when the block raises, on SIGINT/SIGTERM (see `_SignalGuard`) and at interpreter
    exit. Writes from several threads are serialised by a lock.

    Args:
        path: the bag directory to create (parents are created).
        storage: "mcap" (default) or "sqlite3".
    Raises:
        BagError: the path exists already or the storage is unknown.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        if storage not in _PLUGINS:
            raise BagError(f"unknown bag storage {storage!r}; choose one of {list(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        if self.path.exists():
            raise BagError(f"bag path {self.path} exists already; not overwriting it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=_BAG_VERSION, storage_plugin=_PLUGINS[storage])
        self._lock = threading.Lock()
        self._connections: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        try:
            self._writer.open()
        except WriterError as err:
            raise BagError(f"cannot create bag {self.path}: {err}") from None
        self._closed = False
        _OPEN_WRITERS.add(self)
        _GUARD.acquire()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type of the topics added so far."""
        return dict(self._types)

    def add_topic(
        self,
        topic: str,
        msgtype: str,
        qos: Sequence[QoSProfile | Qos] = (),
    ) -> None:
        """Declare a topic and its type ('sensor_msgs/msg/Image' or 'sensor_msgs/Image').

        Args:
            topic: the topic name.
            msgtype: its message type; the definition and hash of the installed type are stored.
            qos: the publishers' offered QoS profiles (stored in the metadata; `play` uses them).
        Raises:
            BagError: the topic was added with another type, or the bag is closed.
            MessageTypeError: no definition can be found for the type.
        """
        pkg, name = _split_type(msgtype)
        msgtype = f"{pkg}/msg/{name}"
        with self._lock:
            self._check_open()
            if topic in self._types:
                if self._types[topic] != msgtype:
                    raise BagError(
                        f"topic {topic} is already in bag {self.path} as {self._types[topic]}, "
                        f"not {msgtype}"
                    )
                return
            msgdef, rihs01 = _type_definition(msgtype)
            offered = [q if isinstance(q, Qos) else to_bag_qos(q) for q in qos]
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=offered
            )
            self._types[topic] = msgtype
            self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Write one message.

        Args:
            topic: the topic. A topic not added yet is added when `msg` is an rclpy message.
            stamp_ns: the bag timestamp, integer nanoseconds (receive time when recording).
            msg: an rclpy message, or its CDR bytes (bytes / bytearray / memoryview).
        Raises:
            BagError: unknown topic for raw bytes, a message of another type than the topic's,
                a negative stamp, or a closed bag.
        """
        if isinstance(msg, (bytes, bytearray, memoryview)):
            data = msg
        else:
            msgtype = message_type_name(msg)
            if topic not in self._types:
                self.add_topic(topic, msgtype)
            elif self._types[topic] != msgtype:
                raise BagError(f"topic {topic} holds {self._types[topic]}, got a {msgtype}")
            data = serialize_message(msg)
        stamp_ns = int(stamp_ns)
        if stamp_ns < 0:
            raise BagError(f"bag timestamps cannot be negative, got {stamp_ns} ns on {topic}")
        entered = _GUARD.enter()
        try:
            with self._lock:
                self._check_open()
                connection = self._connections.get(topic)
                if connection is None:
                    raise BagError(
                        f"topic {topic} was not added to bag {self.path}: call add_topic first "
                        f"(topics: {sorted(self._types)})"
                    )
                self._writer.write(connection, stamp_ns, data)
                self.counts[topic] += 1
        finally:
            _GUARD.exit(entered)

    def close(self) -> None:
        """Finish the bag: flush the last chunk, write the index/summary and metadata.yaml."""
        entered = _GUARD.enter()
        try:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                _OPEN_WRITERS.discard(self)
                try:
                    self._writer.close()
                except (OSError, WriterError, sqlite3.Error) as err:
                    with contextlib.suppress(OSError, WriterError, sqlite3.Error):
                        self._writer.abort()
                    raise BagError(f"could not finish bag {self.path}: {err}") from err
                finally:
                    _GUARD.release()
        finally:
            _GUARD.exit(entered)
        log.debug("closed bag %s: %s", self.path, self.counts)

    def _check_open(self) -> None:
        if self._closed:
            raise BagError(f"bag {self.path} is closed")

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Close (not abort) on errors too: what was written before the error is kept.
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except BagError as err:
            log.error("%s (while handling %s)", err, exc_type.__name__)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicInfo:
    """A topic in a bag.

    Attributes:
        name: topic name.
        msgtype: message type, 'pkg/msg/Name'.
        count: number of messages.
        qos: QoS profiles the recorded publishers offered (may be empty).
    """

    name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...] = ()


@dataclass(frozen=True)
class BagMessage:
    """One stored message.

    Attributes:
        topic: topic name.
        msgtype: message type, 'pkg/msg/Name'.
        stamp_ns: bag timestamp (receive time when recorded), integer nanoseconds.
        data: the CDR bytes (`deserialize_message(data, import_message_type(msgtype))`).
    """

    topic: str
    msgtype: str
    stamp_ns: int
    data: bytes


class BagReader:
    """An open rosbag2 bag (a directory with metadata.yaml, or a single .mcap / .db3 file).

    Raises (on construction):
        BagNotFoundError: the path does not exist.
        NotABagError: a directory without metadata.yaml, or a file that is not .mcap/.db3.
        CorruptBagError: metadata, index or storage file unreadable (e.g. truncated).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagNotFoundError(f"bag not found: {self.path}")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            storage = sorted(p.name for p in self.path.glob("*") if p.suffix in (".mcap", ".db3"))
            hint = (
                f"; it holds {storage}: a recording that was never closed (killed?)"
                if storage
                else ""
            )
            raise NotABagError(f"not a rosbag2 bag: {self.path} has no metadata.yaml{hint}")
        if self.path.is_file() and self.path.suffix not in (".mcap", ".db3"):
            raise NotABagError(
                f"not a rosbag2 bag: {self.path} (expected a bag directory, .mcap or .db3)"
            )
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except FileNotFoundError as err:
            raise CorruptBagError(f"corrupt bag {self.path}: {_one_line(err)}") from None
        except (*_READ_ERRORS, KeyError, ValueError, TypeError) as err:
            raise CorruptBagError(
                f"corrupt or truncated bag {self.path}: {_one_line(err)}"
            ) from None
        self.storage = "sqlite3" if self._storage_suffix() == ".db3" else "mcap"

    def _storage_suffix(self) -> str:
        if self.path.is_file():
            return self.path.suffix
        return ".db3" if any(self.path.glob("*.db3")) else ".mcap"

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """topic name -> TopicInfo, for every topic in the bag (also those with no messages)."""
        topics: dict[str, TopicInfo] = {}
        for conn in self._reader.connections:
            old = topics.get(conn.topic)
            qos = tuple(getattr(conn.ext, "offered_qos_profiles", ()))
            count = conn.msgcount + (old.count if old else 0)
            topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, qos)
        return topics

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_ns(self) -> int:
        """Timestamp of the first message, ns (0 for an empty bag)."""
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Timestamp of the last message, ns (0 for an empty bag)."""
        return int(self._reader.end_time) - 1 if self.message_count else 0

    @property
    def duration_ns(self) -> int:
        """Last minus first timestamp, ns."""
        return self.end_ns - self.start_ns

    def _connections(self, topics: Iterable[str] | None) -> list:
        if topics is None:
            return list(self._reader.connections)
        wanted = list(topics)
        present = {c.topic for c in self._reader.connections}
        unknown = [t for t in wanted if t not in present]
        if unknown:
            raise UnknownTopicError(
                f"topic(s) {unknown} not in bag {self.path}; it has {sorted(present)}"
            )
        return [c for c in self._reader.connections if c.topic in wanted]

    def messages(
        self,
        topics: Iterable[str] | None = None,
        start_ns: int | None = None,
        stop_ns: int | None = None,
    ) -> Iterator[BagMessage]:
        """Stored messages in timestamp order, as CDR bytes.

        Args:
            topics: only these topics (all when None).
            start_ns, stop_ns: only messages with start_ns <= stamp < stop_ns.
        Raises:
            UnknownTopicError: a requested topic is not in the bag (raised at the call).
            CorruptBagError: the storage turns out damaged while reading.
        """
        connections = self._connections(topics)
        return self._iterate(connections, start_ns, stop_ns)

    def _iterate(self, connections, start_ns, stop_ns) -> Iterator[BagMessage]:
        if not connections:
            return
        try:
            for conn, stamp, data in self._reader.messages(connections, start_ns, stop_ns):
                yield BagMessage(conn.topic, conn.msgtype, int(stamp), bytes(data))
        except (*_READ_ERRORS, ValueError, IndexError) as err:
            raise CorruptBagError(
                f"corrupt or truncated bag {self.path}: {_one_line(err)}"
            ) from None

    def read_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """(topic, stamp_ns, rclpy message) in timestamp order, deserialised.

        Raises:
            UnknownTopicError: as `messages` (at the call).
            MessageTypeError: a topic's type is not installed (at the call).
            CorruptBagError: as `messages`.
        """
        connections = self._connections(topics)
        classes = {c.msgtype: import_message_type(c.msgtype) for c in connections}
        return (
            (item.topic, item.stamp_ns, deserialize_message(item.data, classes[item.msgtype]))
            for item in self._iterate(connections, None, None)
        )

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def open_bag(path: str | os.PathLike) -> BagReader:
    """Open a bag for reading (see `BagReader`); use it as a context manager."""
    return BagReader(path)


_MCAP_MAGIC = b"\x89MCAP0\r\n"


@dataclass
class SalvagedBag:
    """What `salvage_mcap` could read from a damaged MCAP file.

    Attributes:
        topics: topic -> message type of the channels seen before the damage.
        messages: the complete messages before the damage, in file order.
        error: why reading stopped ("" when the file ended cleanly).
    """

    topics: dict[str, str]
    messages: list[BagMessage]
    error: str = ""


def _mcap_string(buf: memoryview, at: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, at)
    return bytes(buf[at + 4 : at + 4 + n]).decode(), at + 4 + n


def _mcap_decompress(data: bytes, compression: str) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        from backports import zstd  # what rosbags itself reads MCAP chunks with

        return zstd.decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    raise ValueError(f"unsupported MCAP chunk compression {compression!r}")


def salvage_mcap(path: str | os.PathLike, topics: Iterable[str] | None = None) -> SalvagedBag:
    """Read the messages of an MCAP file front to back without its index or summary (a
    recording that was killed, or a file cut short), stopping at the first incomplete record.

    Args:
        path: the .mcap file, or a bag directory holding one.
        topics: keep only these topics (all when None).
    Raises:
        NotABagError: no .mcap file, or one without the MCAP magic.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.mcap"))
        if not files:
            raise NotABagError(f"no .mcap file in {path}")
        path = files[0]
    raw = path.read_bytes()
    if not raw.startswith(_MCAP_MAGIC):
        raise NotABagError(f"not an MCAP file: {path}")
    wanted = None if topics is None else set(topics)
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)
    out = SalvagedBag({}, [])

    def records(buf: memoryview, at: int, end: int, top: bool) -> int:
        while at + 9 <= end:
            op, size = buf[at], struct.unpack_from("<Q", buf, at + 1)[0]
            body = at + 9
            if body + size > end:
                if top:
                    out.error = f"record at byte {at} cut short ({end - body} of {size} bytes)"
                return at
            if op == 0x03:  # schema: id, name, encoding, data
                (sid,) = struct.unpack_from("<H", buf, body)
                schemas[sid], _ = _mcap_string(buf, body + 2)
            elif op == 0x04:  # channel: id, schema id, topic, encoding, metadata
                cid, sid = struct.unpack_from("<HH", buf, body)
                topic, _ = _mcap_string(buf, body + 4)
                channels[cid] = (topic, schemas.get(sid, ""))
                out.topics[topic] = schemas.get(sid, "")
            elif op == 0x05:  # message: channel, sequence, log time, publish time, data
                cid, _, log_time, _ = struct.unpack_from("<HIQQ", buf, body)
                topic, msgtype = channels.get(cid, ("", ""))
                if topic and (wanted is None or topic in wanted):
                    data = bytes(buf[body + 22 : body + size])
                    out.messages.append(BagMessage(topic, msgtype, int(log_time), data))
            elif op == 0x06:  # chunk: start, end, size, crc, compression, records
                # start, end and uncompressed size (u64 each) and the crc (u32) are not needed
                compression, at2 = _mcap_string(buf, body + 28)
                (csize,) = struct.unpack_from("<Q", buf, at2)
                inner = _mcap_decompress(bytes(buf[at2 + 8 : at2 + 8 + csize]), compression)
                records(memoryview(inner), 0, len(inner), top=False)
            elif op == 0x0F and top:  # data end: the summary follows
                return at
            at = body + size
        return at

    try:
        records(memoryview(raw), len(_MCAP_MAGIC), len(raw), top=True)
    except (struct.error, ValueError, UnicodeDecodeError, *_READ_ERRORS) as err:
        out.error = _one_line(err) or type(err).__name__
    return out


# --------------------------------------------------------------------------------------------
# ROS sessions and signals
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _ros_context(context: Context | None) -> Iterator[Context]:
    """The given (initialised) context, or a fresh one shut down on exit."""
    if context is not None:
        yield context
        return
    own = Context()
    rclpy.init(context=own)
    try:
        yield own
    finally:
        if own.ok():
            rclpy.shutdown(context=own)


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass
class RecordSummary:
    """What `record` wrote.

    Attributes:
        path: the bag directory.
        counts: messages written per topic.
        duration_s: wall time spent recording, seconds.
        missing: requested topics that never appeared.
    """

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    missing: list[str] = field(default_factory=list)


def _hidden(topic: str) -> bool:
    return any(part.startswith("_") for part in topic.split("/"))


class _Recorder:
    """Subscribes (raw) to topics as they appear and writes what arrives."""

    def __init__(
        self, node: Node, writer: BagWriter, topics: Sequence[str] | None, depth: int
    ) -> None:
        self.node = node
        self.writer = writer
        self.topics = None if topics is None else set(topics)
        self.depth = depth
        self.subscriptions: dict[str, Any] = {}
        self.skipped: set[str] = set()
        self.received = 0

    def discover(self) -> None:
        """Subscribe to every wanted topic that has a publisher and is not subscribed yet."""
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.subscriptions or topic in self.skipped:
                continue
            if self.topics is None and _hidden(topic):
                continue
            if self.topics is not None and topic not in self.topics:
                continue
            if len(types) != 1:
                log.warning("not recording %s: it has several types %s", topic, types)
                self.skipped.add(topic)
                continue
            publishers = [
                info
                for info in self.node.get_publishers_info_by_topic(topic)
                if (info.node_name, info.node_namespace)
                != (self.node.get_name(), self.node.get_namespace())
            ]
            if not publishers:
                continue  # only subscribers so far: wait for a publisher and its QoS
            try:
                cls = import_message_type(types[0])
                offered = [info.qos_profile for info in publishers]
                self.writer.add_topic(topic, types[0], offered)
            except MessageTypeError as err:
                log.warning("not recording %s: %s", topic, err)
                self.skipped.add(topic)
                continue
            qos = recorder_qos(offered, self.depth)
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), qos, raw=True
            )
            log.info(
                "recording %s [%s] (%s, %s)",
                topic,
                types[0],
                qos.reliability.name.lower(),
                qos.durability.name.lower(),
            )

    def _callback(self, topic: str):
        write = self.writer.write

        def on_message(data: bytes, info) -> None:
            stamp = info.get("received_timestamp") or time.time_ns()
            write(topic, stamp, data)
            self.received += 1

        return on_message


def _default_bag_name() -> str:
    return datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


def record(
    topics: Sequence[str] | None,
    out: str | os.PathLike | None = None,
    storage: str = "mcap",
    stop: threading.Event | None = None,
    duration: float | None = None,
    *,
    context: Context | None = None,
    depth: int = 1000,
    discovery_period: float = 0.1,
) -> RecordSummary:
    """Record topics into a new bag until `stop` is set, `duration` passes, SIGINT or SIGTERM.

    Topics are subscribed as soon as they have a publisher, including topics that appear after
    recording started; types come from the ROS graph. Subscriptions are raw (no deserialisation)
    with a QoS profile compatible with the publishers (see `wm_ros.ros.qos.recorder_qos`), so
    latched (transient_local) topics are recorded and a burst of up to `depth` messages is
    queued rather than dropped. Each message is stamped with its receive time. Callbacks run in
    the calling thread; when that is the main thread, SIGINT/SIGTERM end the recording cleanly
    (messages already received are drained, and the bag is closed).

    Args:
        topics: topic names to record; None records every (non-hidden) topic.
        out: bag directory to create; default `rosbag2_<date>-<time>` in the working directory.
        storage: "mcap" or "sqlite3".
        stop: an event that ends the recording when set (from another thread).
        duration: seconds to record; None records until stopped.
        context: an initialised rclpy Context to use; a fresh one (ROS_DOMAIN_ID from the
            environment) is created and shut down when None.
        depth: subscription queue depth, messages.
        discovery_period: how often the graph is checked for new topics, seconds.
    Returns:
        RecordSummary with message counts per topic.
    Raises:
        BagError: the output exists, or the storage is unknown.
        ValueError: an empty topic list or a non-positive duration.
    """
    if topics is not None and not topics:
        raise ValueError("no topics to record: pass topic names, or None for all topics")
    if duration is not None and duration <= 0:
        raise ValueError(f"record duration must be positive, got {duration} s")
    stop = stop if stop is not None else threading.Event()
    path = Path(out) if out is not None else Path(_default_bag_name())
    summary = RecordSummary(path)
    started = time.monotonic()
    with stop_on_signals(stop), BagWriter(path, storage) as writer, _ros_context(context) as ctx:
        node = Node(
            "wm_ros_bag_recorder",
            context=ctx,
            enable_rosout=False,
            start_parameter_services=False,
        )
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        recorder = _Recorder(node, writer, topics, depth)
        node.create_timer(discovery_period, recorder.discover)
        deadline = None if duration is None else started + duration
        try:
            recorder.discover()
            log.info("recording to %s (%s)", path, storage)
            while (
                not stop.is_set() and ctx.ok() and (deadline is None or time.monotonic() < deadline)
            ):
                executor.spin_once(timeout_sec=0.05)
            if ctx.ok():
                _drain(executor, recorder)
        except (KeyboardInterrupt, ExternalShutdownException):
            log.info("recording interrupted")
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
        summary.counts = dict(writer.counts)
    summary.duration_s = time.monotonic() - started
    if topics is not None:
        summary.missing = [t for t in topics if t not in summary.counts]
        if summary.missing:
            log.warning("never saw a publisher on %s", summary.missing)
    log.info(
        "wrote %d messages on %d topics to %s in %.1f s",
        sum(summary.counts.values()),
        len(summary.counts),
        path,
        summary.duration_s,
    )
    return summary


def _drain(executor: SingleThreadedExecutor, recorder: _Recorder, limit_s: float = 1.0) -> None:
    """Take the messages already received before closing (until none arrive for 50 ms)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        before = recorder.received
        executor.spin_once(timeout_sec=0.05)
        if recorder.received == before:
            return


# --------------------------------------------------------------------------------------------
# Playback
# --------------------------------------------------------------------------------------------


@dataclass
class PlaySummary:
    """What `play` published.

    Attributes:
        published: messages published per topic (all loops).
        loops: completed passes over the bag.
        duration_s: wall time spent playing, seconds.
    """

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    duration_s: float = 0.0


_POLL_NS = 100_000_000


class _Player:
    """Publishes a bag's messages on a monotonic wall-clock schedule (bag time / rate)."""

    def __init__(
        self,
        publishers: dict[str, Any],
        *,
        clock: Any,
        stop: threading.Event,
        context: Context,
        rate: float,
        clock_hz: float,
    ) -> None:
        self.publishers = publishers
        self.clock = clock
        self.stop = stop
        self.context = context
        self.rate = rate
        self.clock_period_ns = round(1e9 / clock_hz) if clock is not None else 0
        self.summary = PlaySummary(published=dict.fromkeys(publishers, 0))
        self.origin_bag_ns = 0
        self.origin_wall_ns = 0

    def wall_ns(self, bag_ns: int) -> int:
        return self.origin_wall_ns + round((bag_ns - self.origin_bag_ns) / self.rate)

    def bag_ns(self, wall_ns: int) -> int:
        return self.origin_bag_ns + round((wall_ns - self.origin_wall_ns) * self.rate)

    def run(self, reader: BagReader, first_ns: int, last_ns: int, loop: bool) -> None:
        """Play [first_ns, end] once, or over and over when `loop`, until stopped."""
        topics = list(self.publishers)
        self.origin_bag_ns, self.origin_wall_ns = first_ns, time.monotonic_ns()
        while self.running():
            for item in reader.messages(topics, start_ns=first_ns):
                if not self._wait_until(self.wall_ns(item.stamp_ns)):
                    return
                if self.clock is not None:
                    self.clock.publish(Clock(clock=ns_to_time(item.stamp_ns)))
                self.publishers[item.topic].publish(item.data)
                self.summary.published[item.topic] += 1
            self.summary.loops += 1
            if not loop or last_ns < first_ns:
                return
            # The next pass starts where this one ended on the same schedule: no drift.
            self.origin_wall_ns += round((last_ns - first_ns) / self.rate)

    def wait_ready(self, delay: float, subscribers: int, timeout: float) -> None:
        """Wait until every publisher has `subscribers` matches (at most `timeout` s), then
        `delay` s more."""
        if subscribers > 0:
            deadline = time.monotonic() + timeout
            counts: dict[str, int] = {}
            while self.running() and time.monotonic() < deadline:
                counts = {t: p.get_subscription_count() for t, p in self.publishers.items()}
                if min(counts.values(), default=subscribers) >= subscribers:
                    break
                self.stop.wait(0.02)
            else:
                lacking = [t for t, n in counts.items() if n < subscribers]
                if lacking and self.running():
                    log.warning("playing without subscribers on %s", lacking)
        end = time.monotonic() + delay
        while self.running() and time.monotonic() < end:
            self.stop.wait(min(0.1, end - time.monotonic()))

    def running(self) -> bool:
        """Not stopped, and the context not shut down (rclpy's signal handlers do that)."""
        return not self.stop.is_set() and self.context.ok()

    def _wait_until(self, target_ns: int) -> bool:
        """Sleep until monotonic time `target_ns`, ticking /clock; False when stopped."""
        while self.running():
            now = time.monotonic_ns()
            if now >= target_ns:
                return True
            # Wake at least every 100 ms to notice a shut-down context.
            wake = min(target_ns, now + (self.clock_period_ns or _POLL_NS))
            self.stop.wait((wake - now) / 1e9)
            now = time.monotonic_ns()
            if self.clock_period_ns and now < target_ns:
                self.clock.publish(Clock(clock=ns_to_time(self.bag_ns(now))))
        return False


def play(  # noqa: PLR0917 (the positional order is the documented interface)
    bag: str | os.PathLike,
    rate: float = 1.0,
    loop: bool = False,
    publish_clock: bool = False,
    topics: Sequence[str] | None = None,
    start_offset: float = 0.0,
    *,
    stop: threading.Event | None = None,
    context: Context | None = None,
    delay: float = 0.0,
    clock_hz: float = 40.0,
    wait_for_subscribers: int = 0,
    wait_timeout: float = 10.0,
    latched: Sequence[str] = (),
) -> PlaySummary:
    """Publish a bag's messages (raw bytes) with their original timing divided by `rate`.

    Each message is published at `t0 + (stamp - first) / rate` on the monotonic clock, so timing
    errors never accumulate, also over loops. Publishers use the recorded QoS (a latched topic
    is published transient_local). Message classes are imported from the type strings.

    Args:
        bag: bag directory (or .mcap / .db3 file).
        rate: playback speed factor (> 0); 2.0 plays twice as fast.
        loop: start over at the end, until stopped.
        publish_clock: publish rosgraph_msgs/Clock on /clock carrying the bag time: before each
            message (its stamp) and at `clock_hz` while waiting.
        topics: only these topics (all when None).
        start_offset: skip the first seconds of the bag.
        stop: an event that ends playback when set.
        context: an initialised rclpy Context to use; a fresh one is created when None.
        delay: seconds to wait after creating the publishers before the first message, so that
            subscribers can match them.
        clock_hz: /clock rate while waiting between messages, Hz.
        wait_for_subscribers: before publishing, wait (up to `wait_timeout` s) until every
            topic's publisher has at least this many subscriptions.
        wait_timeout: seconds to wait for subscribers.
        latched: topics published reliable + transient_local (depth 1) whatever the bag
            recorded (bags written without QoS metadata, e.g. a goal image that a latched
            subscriber expects).
    Returns:
        PlaySummary with messages published per topic.
    Raises:
        BagNotFoundError, NotABagError, CorruptBagError, UnknownTopicError: see `BagReader`.
        MessageTypeError: a message type in the bag is not installed.
        ValueError: rate <= 0 or a negative start offset.
    """
    if not rate > 0:
        raise ValueError(f"playback rate must be positive, got {rate}")
    if start_offset < 0:
        raise ValueError(f"start offset must be >= 0 s, got {start_offset}")
    stop = stop if stop is not None else threading.Event()
    summary = PlaySummary()
    with open_bag(bag) as reader:
        connections = reader.topics
        selected = list(connections) if topics is None else list(topics)
        reader._connections(selected)  # raises UnknownTopicError up front
        classes = {t: import_message_type(connections[t].msgtype) for t in selected}
        first_ns = reader.start_ns + round(start_offset * 1e9)
        with stop_on_signals(stop), _ros_context(context) as ctx:
            node = Node(
                "wm_ros_bag_player",
                context=ctx,
                enable_rosout=False,
                start_parameter_services=False,
            )
            try:
                publishers = {
                    t: node.create_publisher(
                        classes[t],
                        t,
                        latched_qos() if t in latched else from_bag_qos(connections[t].qos, 100),
                    )
                    for t in selected
                }
                clock = (
                    node.create_publisher(Clock, "/clock", reliable_qos(10))
                    if publish_clock
                    else None
                )
                player = _Player(
                    publishers, clock=clock, stop=stop, context=ctx, rate=rate, clock_hz=clock_hz
                )
                summary = player.summary
                started = time.monotonic()
                try:
                    player.wait_ready(delay, wait_for_subscribers, wait_timeout)
                    started = time.monotonic()
                    player.run(reader, first_ns, reader.end_ns, loop)
                except KeyboardInterrupt:
                    log.info("playback interrupted")
                summary.duration_s = time.monotonic() - started
                # Reliable subscribers get everything before the publishers go away.
                for pub in publishers.values():
                    if ctx.ok() and pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                        pub.wait_for_all_acked(Duration(seconds=2))
            finally:
                node.destroy_node()
    log.info(
        "published %d messages on %d topics in %.2f s (%d loops)",
        sum(summary.published.values()),
        len(summary.published),
        summary.duration_s,
        summary.loops,
    )
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _fail(command: str, message: str) -> int:
    sys.stderr.write(f"wm-ros bag {command}: error: {' '.join(message.split())}\n")
    return 1


def _cmd_record(args: argparse.Namespace) -> int:
    if args.all and args.topics:
        return _fail("record", "give topic names or -a/--all, not both")
    if not args.all and not args.topics:
        return _fail("record", "give topic names to record, or -a/--all for every topic")
    try:
        summary = record(
            None if args.all else list(args.topics),
            out=args.output,
            storage=args.storage,
            duration=args.duration,
        )
    except (BagError, ValueError) as err:
        return _fail("record", str(err))
    for topic, count in sorted(summary.counts.items()):
        log.info("  %s: %d messages", topic, count)
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    try:
        play(
            args.bag,
            rate=args.rate,
            loop=args.loop,
            publish_clock=args.clock,
            topics=args.topics,
            start_offset=args.start_offset,
            delay=args.delay,
            clock_hz=args.clock_hz,
            wait_for_subscribers=args.wait_for_subscribers,
            wait_timeout=args.wait_timeout,
            latched=args.latched or (),
        )
    except (BagError, ValueError) as err:
        return _fail("play", str(err))
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_bag_arguments(subparsers: argparse._SubParsersAction) -> None:
    """Add the `record` and `play` commands to an argparse subparsers object.

    Each sets `func(namespace) -> exit code` (0 ok; 1 with a one-line message on stderr for a
    missing or corrupt bag, an unknown topic or type, or bad arguments).
    """
    rec = subparsers.add_parser(
        "record",
        help="record topics to a rosbag2 bag",
        description="Record topics (raw CDR, receive timestamps) until Ctrl-C or --duration.",
    )
    rec.add_argument("topics", nargs="*", metavar="TOPIC", help="topics to record")
    rec.add_argument("-a", "--all", action="store_true", help="record every topic")
    rec.add_argument("-o", "--output", default=None, help="bag directory to create")
    rec.add_argument("--storage", choices=STORAGES, default="mcap", help="storage format")
    rec.add_argument(
        "--duration", type=_positive, default=None, metavar="S", help="record S seconds"
    )
    rec.add_argument(
        "--ros-args",
        nargs=argparse.REMAINDER,
        help="accepted and ignored (what a launcher appends: node name remaps, parameters)",
    )
    rec.set_defaults(func=_cmd_record)

    ply = subparsers.add_parser(
        "play",
        help="play a rosbag2 bag onto its topics",
        description="Publish a bag's messages with their recorded timing (divided by --rate).",
    )
    ply.add_argument("bag", metavar="BAG", help="bag directory (or .mcap / .db3 file)")
    ply.add_argument("--rate", type=_positive, default=1.0, help="speed factor (default 1)")
    ply.add_argument("--loop", action="store_true", help="start over at the end")
    ply.add_argument("--clock", action="store_true", help="publish /clock with the bag time")
    ply.add_argument("--clock-hz", type=_positive, default=40.0, help="/clock rate, Hz")
    ply.add_argument("--topics", nargs="+", metavar="T", default=None, help="only these topics")
    ply.add_argument(
        "--start-offset", type=_non_negative, default=0.0, metavar="S", help="skip S seconds"
    )
    ply.add_argument(
        "--delay",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="wait S seconds after creating publishers (lets subscribers match)",
    )
    ply.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait (up to --wait-timeout s) until every topic has N subscribers before playing",
    )
    ply.add_argument(
        "--latched",
        nargs="+",
        metavar="T",
        default=None,
        help="publish these topics latched (transient_local), whatever the bag recorded",
    )
    ply.add_argument(
        "--wait-timeout",
        type=_positive,
        default=10.0,
        metavar="S",
        help="seconds --wait-for-subscribers waits at most (default 10)",
    )
    ply.add_argument(
        "--ros-args",
        nargs=argparse.REMAINDER,
        help="accepted and ignored (what a launcher appends: node name remaps, parameters)",
    )
    ply.set_defaults(func=_cmd_play)


def main(argv: list[str] | None = None) -> int:
    """`python -m wm_ros.ros.bag {record,play} ...` (the same as `wm-ros bag ...`)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    parser = argparse.ArgumentParser(prog="wm-ros bag", description=__doc__.splitlines()[0])
    add_bag_arguments(parser.add_subparsers(dest="command", required=True, metavar="ACTION"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
