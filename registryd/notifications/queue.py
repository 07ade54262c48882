"""
One endpoint's undelivered events, oldest first, kept where a restart finds
them.

Records are rendered events: JSON texts as bytes, one line each.  A spooled
queue appends each record to a segment file (C{segment-N.jsonl}, JSON
lines) before L{EventQueue.put} returns, so a crash of the process loses
nothing it accepted; the segment is fsynced a moment later (and when it is
rolled or the queue closed), which bounds what a power cut can take without
an fsync per event on the reactor thread.  Only the first C{window} records
are held in memory; the rest are read back from the segments in turn.
L{EventQueue.ack} records how far delivery got in the C{cursor} file and
deletes segments wholly delivered.  Delivery is at least once: a crash
between a delivery and its cursor write sends that batch again (receivers
can tell by the event ids).

Files are only ever appended to, renamed or deleted.  A line cut short by a
crash mid-write is the last thing in its segment (a new segment is started
after a failed write and on every start), and is skipped with a warning, as
is any line that is not JSON: the readable prefix and everything after it
survive.
"""

import json
import os
import re
from collections import deque
from itertools import islice

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

log = Logger()

WINDOW = 256
SEGMENT_RECORDS = 4096
SYNC_DELAY = 1.0

_SEGMENT = re.compile(r"^segment-([0-9]{16})\.jsonl$")
_CURSOR = "cursor"


class EventQueue:
    """
    An ordered queue of records for one endpoint, bounded, in memory or
    spooled to a directory.

    @param name: The endpoint's name, for the logs.
    @param limit: Most records held (in memory and spooled together); past
        it L{put} refuses records, counts them in L{dropped} and logs.
    @param clock: The L{IReactorTime} that schedules wake-ups and fsyncs.
    @param directory: The spool directory (created if missing), whose
        records are restored now; None keeps records in memory only.
    @param window: Records of a spooled queue held in memory.
    @param segmentRecords: Records per segment file.
    @param syncDelay: Seconds between a write and its fsync.
    @ivar dropped: Records refused since the queue was made.
    """

    def __init__(
        self,
        name,
        limit,
        clock,
        directory=None,
        window=WINDOW,
        segmentRecords=SEGMENT_RECORDS,
        syncDelay=SYNC_DELAY,
    ):
        self.name = name
        self.dropped = 0
        self._limit = limit
        self._clock = clock
        self._directory = directory
        self._window = limit if directory is None else window
        self._memory = deque()  # (record, spool position just after it)
        self._unloaded = 0  # spooled records behind those in memory
        self._waiting = []
        self._waking = None
        self._droppedInARow = 0
        if directory is not None:
            self._segmentRecords = segmentRecords
            self._syncDelay = syncDelay
            self._sync = None
            self._writer = None
            self._reader = None
            self._restore()

    def __len__(self):
        return len(self._memory) + self._unloaded

    def put(self, record):
        """
        Append C{record} (bytes without a line break).

        @return: Whether it was accepted; a refused record is counted and
            logged, never dropped silently.
        """
        if len(self) >= self._limit:
            self._drop(f"the queue is full ({self._limit} events)")
            return False
        position = None
        if self._directory is not None:
            try:
                position = self._append(record)
            except OSError as e:
                self._drop(f"cannot spool to {self._directory}: {e.strerror or e}")
                return False
        self._endDropping()
        if self._unloaded == 0 and len(self._memory) < self._window:
            self._memory.append((record, position))
            if position is not None:
                self._skipTo(position)
        else:
            self._unloaded += 1
            self._fill()
        if self._waiting and self._waking is None:
            # In a later turn: put() is called while a request is answered.
            self._waking = self._clock.callLater(0, self._wake)
        return True

    def peek(self, count):
        """The oldest C{count} records at most (all at once only up to C{window})."""
        return [record for record, _ in islice(self._memory, count)]

    def ack(self, count):
        """The oldest C{count} records are delivered: forget them, on disk too."""
        for _ in range(count):
            _, position = self._memory.popleft()
        if self._directory is not None and count:
            self._advance(position)
            self._fill()

    def wait(self):
        """
        @return: Deferred firing when there is a record to L{peek}; after a
            L{put}, in a later reactor turn (cancellable).
        """
        if self._memory:
            return succeed(None)
        d = Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def close(self):
        """
        Make what was spooled durable and release the files.  Records stay
        where they are; a later L{put} starts a new segment.
        """
        if self._waking is not None:
            self._waking.cancel()
            self._waking = None
        self._endDropping()
        if self._directory is None:
            return
        if self._sync is not None and self._sync.active():
            self._sync.cancel()
        self._sync = None
        if self._writer is not None:
            self._closeWriter()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _wake(self):
        self._waking = None
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _endDropping(self):
        """Say how many were dropped since the queue was last full, if any."""
        if self._droppedInARow:
            log.warn(
                "notifications to {name}: {count} events were dropped",
                name=self.name,
                count=self._droppedInARow,
            )
            self._droppedInARow = 0

    def _drop(self, reason):
        self.dropped += 1
        self._droppedInARow += 1
        if self._droppedInARow == 1:
            log.warn(
                "notifications to {name}: {reason}; dropping events (counted) until one fits",
                name=self.name,
                reason=reason,
            )

    # -- The spool --------------------------------------------------------

    def _path(self, number):
        return os.path.join(self._directory, f"segment-{number:016d}.jsonl")

    def _restore(self):
        os.makedirs(self._directory, exist_ok=True)
        numbers = sorted(
            int(m.group(1)) for m in map(_SEGMENT.match, os.listdir(self._directory)) if m
        )
        number, offset = self._readCursor(numbers)
        self._segments = []
        count = 0
        for n in numbers:
            if n < number:
                os.remove(self._path(n))  # delivered; its deletion was cut short
                continue
            self._segments.append(n)
            last = b"\n"
            with open(self._path(n), "rb") as f:
                f.seek(offset if n == number else 0)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    count += chunk.count(b"\n")
                    last = chunk[-1:]
            if last != b"\n":
                log.warn(
                    "notifications to {name}: skipping a torn event at the end of {path}",
                    name=self.name,
                    path=self._path(n),
                )
        self._readPosition = (number, offset)
        self._nextNumber = max(numbers + [number]) + 1
        self._unloaded = count
        if count:
            log.info(
                "notifications to {name}: resuming {count} undelivered events from {directory}",
                name=self.name,
                count=count,
                directory=self._directory,
            )
        self._fill()

    def _readCursor(self, numbers):
        """Where delivery stopped; the start of the spool if that is unknown."""
        start = (numbers[0] if numbers else 0, 0)
        try:
            with open(os.path.join(self._directory, _CURSOR), "rb") as f:
                text = f.read()
        except FileNotFoundError:
            return start
        parts = text.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
        log.warn(
            "notifications to {name}: unreadable cursor in {directory}; sending its spool again",
            name=self.name,
            directory=self._directory,
        )
        return start

    def _append(self, record):
        """Write C{record} to the current segment; return the position after it."""
        if self._writer is None or self._writeCount >= self._segmentRecords:
            self._roll()
        line = memoryview(record + b"\n")
        try:
            while line:
                line = line[os.write(self._writer, line) :]
        except OSError:
            # The segment may end in a torn line now: nothing goes after it.
            self._closeWriter()
            raise
        self._writeCount += 1
        self._writeOffset += len(record) + 1
        if self._sync is None:
            self._sync = self._clock.callLater(self._syncDelay, self._syncWriter)
        return (self._writeNumber, self._writeOffset)

    def _roll(self):
        if self._writer is not None:
            self._closeWriter()
        number = self._nextNumber
        self._writer = os.open(
            self._path(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self._nextNumber += 1
        self._writeNumber = number
        self._writeCount = self._writeOffset = 0
        self._segments.append(number)
        directory = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)  # so that the new file's name survives a power cut
        finally:
            os.close(directory)

    def _closeWriter(self):
        writer, self._writer = self._writer, None
        try:
            self._fsync(writer)
        finally:
            os.close(writer)

    def _syncWriter(self):
        self._sync = None
        if self._writer is not None:
            self._fsync(self._writer)

    def _fsync(self, fd):
        try:
            os.fsync(fd)
        except OSError as e:
            log.error(
                "notifications to {name}: cannot sync the spool: {error}",
                name=self.name,
                error=e.strerror or e,
            )

    def _fill(self):
        """Read spooled records into memory, up to the window."""
        while self._unloaded and len(self._memory) < self._window:
            try:
                loaded = self._readRecord()
            except OSError as e:
                log.error(
                    "notifications to {name}: cannot read the spool: {error}",
                    name=self.name,
                    error=e.strerror or e,
                )
                return  # tried again on the next put or ack
            if loaded is None:
                return
            self._memory.append(loaded)
            self._unloaded -= 1

    def _readRecord(self):
        """The next spooled record and the position after it, or None if none is readable yet."""
        while True:
            number, offset = self._readPosition
            if self._reader is None:
                following = [n for n in self._segments if n >= number]
                if not following:
                    return None
                if following[0] != number:
                    number, offset = self._readPosition = (following[0], 0)
                self._reader = open(self._path(number), "rb")
                self._reader.seek(offset)
            line = self._reader.readline()
            if line.endswith(b"\n"):
                offset += len(line)
                self._readPosition = (number, offset)
                record = line[:-1]
                if _isJSON(record):
                    return record, self._readPosition
                self._unloaded -= 1  # it was counted
                log.warn(
                    "notifications to {name}: skipping a corrupt event in {path}",
                    name=self.name,
                    path=self._path(number),
                )
                if not self._unloaded:
                    return None
                continue
            # The end of this segment (or a torn line, warned of at restore).
            self._reader.close()
            self._reader = None
            if number >= self._segments[-1]:
                return None  # for now
            self._readPosition = (number + 1, 0)

    def _skipTo(self, position):
        """Move reading past a record that went straight to memory."""
        self._readPosition = position
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _advance(self, position):
        """Record C{position} as delivered up to, and delete the segments before it."""
        temporary = os.path.join(self._directory, _CURSOR + ".tmp")
        try:
            with open(temporary, "wb") as f:
                f.write(b"%d %d\n" % position)
            os.replace(temporary, os.path.join(self._directory, _CURSOR))
        except OSError as e:
            # Not fatal: these events are sent again after a restart.
            log.error(
                "notifications to {name}: cannot record delivery: {error}",
                name=self.name,
                error=e.strerror or e,
            )
            return
        while self._segments and self._segments[0] < position[0]:
            try:
                os.remove(self._path(self._segments.pop(0)))
            except FileNotFoundError:
                pass


def _isJSON(record):
    try:
        json.loads(record)
    except ValueError:
        return False
    return True
