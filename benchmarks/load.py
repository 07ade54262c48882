"""
A load client that leaves the machine to the server: one process,
non-blocking keep-alive connections, each running one exchange at a time (a
push is a POST, then a PUT to where it pointed).

On these 2-core machines the client shares the cores with the server it
measures.  http.client in a pool of processes cost 0.37 ms of CPU per
manifest PUT, more than a third of what registryd spends on one, and the
pool's start-up counted in the time; this client costs about 0.04 ms.
"""

import selectors
import socket
import time
from urllib.parse import urlsplit


def location(url):
    """The path and query of a Location header, to request it again."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def requestBytes(host, method, path, body=b"", headers=()):
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("latin-1") + b"\r\n" + body


def _response(buffer):
    """
    (status, headers, body) of the first whole response in C{buffer},
    removed from it; None while it is incomplete.  Both servers answer
    these requests with a Content-Length.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"a response without Content-Length: {lines[0]}")
    stop = end + 4 + int(headers["content-length"])
    if len(buffer) < stop:
        return None
    body = bytes(buffer[end + 4 : stop])
    del buffer[:stop]
    return int(lines[0].split(" ", 2)[1]), headers, body


class _Connection:
    def __init__(self, address):
        self.socket = socket.create_connection(address)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.setblocking(False)
        self.received = bytearray()
        self.unsent = memoryview(b"")
        self.exchange = None


def run(host, connections, exchanges):
    """
    Run C{exchanges} over C{connections} connections to C{host}, and return
    how many ran per second.  An exchange is a generator that yields the
    bytes of each request and is sent (status, headers, body) of its answer;
    it raises to fail the run.
    """
    address = host.rsplit(":", 1)
    address = (address[0], int(address[1]))
    pending = iter(exchanges)
    selector = selectors.DefaultSelector()
    done = 0

    def send(connection, data):
        connection.unsent = memoryview(data)
        flush(connection)

    def flush(connection):
        while connection.unsent:
            try:
                sent = connection.socket.send(connection.unsent)
            except BlockingIOError:
                selector.modify(connection.socket, selectors.EVENT_READ | selectors.EVENT_WRITE, connection)
                return
            connection.unsent = connection.unsent[sent:]
        selector.modify(connection.socket, selectors.EVENT_READ, connection)

    def begin(connection):
        connection.exchange = next(pending, None)
        if connection.exchange is None:
            selector.unregister(connection.socket)
            connection.socket.close()
        else:
            send(connection, next(connection.exchange))

    def answered(connection, response):
        nonlocal done
        try:
            send(connection, connection.exchange.send(response))
        except StopIteration:
            done += 1
            begin(connection)

    opened = [_Connection(address) for _ in range(connections)]
    start = time.perf_counter()
    for connection in opened:
        selector.register(connection.socket, selectors.EVENT_READ, connection)
        begin(connection)
    try:
        while selector.get_map():
            for key, events in selector.select():
                connection = key.data
                if events & selectors.EVENT_WRITE:
                    flush(connection)
                if events & selectors.EVENT_READ:
                    data = connection.socket.recv(65536)
                    if not data:
                        raise RuntimeError(f"{host} closed a connection mid-exchange")
                    connection.received += data
                    response = _response(connection.received)
                    if response is not None:
                        answered(connection, response)
    finally:
        for connection in opened:
            connection.socket.close()
        selector.close()
    return done / (time.perf_counter() - start)
