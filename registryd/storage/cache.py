"""A least-recently-used cache bounded by the bytes of what it holds."""

import collections


class BoundedCache:
    """
    Maps keys to values whose C{size(value)} sums to at most C{capacity};
    the least recently used entries are dropped to make room.
    """

    def __init__(self, capacity, size=len):
        self._capacity = capacity
        self._size = size
        self._used = 0
        self._entries = collections.OrderedDict()

    def get(self, key):
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key, value):
        size = self._size(value)
        if size > self._capacity:
            return
        self.discard(key)
        self._entries[key] = (value, size)
        self._used += size
        while self._used > self._capacity:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._used -= dropped

    def discard(self, key):
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._used -= entry[1]

    def __len__(self):
        return len(self._entries)
