"""
Delivering one endpoint's queue: POSTs in order, retried until they land.

The oldest events (up to L{BATCH}) go in one envelope; nothing newer is
sent until they are delivered, so the receiver sees events in the order
they happened, however often it fails.  A 2xx answer is a delivery (no
redirect is followed); anything else, no answer within C{timeout}, or a
connection error is a failure, retried after C{backoff} seconds, doubling
up to C{maxbackoff}.  After C{threshold} failures in a row the endpoint is
logged as down, once, and as back when a delivery succeeds again.
"""

import treq
from twisted.internet.defer import CancelledError, TimeoutError, ensureDeferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger

from registryd.notifications.events import EVENTS_MEDIA_TYPE, envelope

log = Logger()

BATCH = 16


class HTTPSink:
    """
    Sends what an L{EventQueue} holds to a L{NotificationEndpoint}'s URL.

    @param httpClient: The L{treq.client.HTTPClient} to POST with.
    @param clock: The L{IReactorTime} for timeouts and back-off.
    @ivar failures: Failed deliveries since the last successful one.
    """

    def __init__(self, endpoint, queue, httpClient, clock, batch=BATCH):
        self._endpoint = endpoint
        self._queue = queue
        self._client = httpClient
        self._clock = clock
        self._batch = batch
        self._headers = {name: list(values) for name, values in endpoint.headers.items()}
        self._headers["Content-Type"] = [EVENTS_MEDIA_TYPE]
        self._running = None
        self._stopped = False
        self.failures = 0

    def start(self):
        """Deliver, from the oldest queued event on, until L{stop}."""
        self._stopped = False
        self._running = ensureDeferred(self._run())
        self._running.addErrback(self._ended)

    def stop(self):
        """
        Stop at once, cancelling a delivery in flight; the queue keeps every
        event not delivered.  @return: Deferred firing when stopped.
        """
        self._stopped = True
        running, self._running = self._running, None
        if running is None:
            return succeed(None)
        running.cancel()
        return running

    def _ended(self, failure):
        if not failure.check(CancelledError):
            log.failure("notifications to {name}: delivery stopped", failure, name=self._endpoint.name)

    async def _run(self):
        endpoint = self._endpoint
        delay = endpoint.backoff
        while True:
            await self._queue.wait()
            batch = self._queue.peek(self._batch)
            problem = await self._deliver(batch)
            if problem is None:
                self._queue.ack(len(batch))
                if self.failures >= endpoint.threshold:
                    log.info(
                        "notifications to {name}: delivering again after {failures} failures",
                        name=endpoint.name,
                        failures=self.failures,
                    )
                self.failures = 0
                delay = endpoint.backoff
                continue
            self.failures += 1
            if self.failures == endpoint.threshold:
                log.warn(
                    "notifications to {name}: {failures} deliveries to {url} failed in a row"
                    " ({problem}); retrying every {maxBackoff}s at most, {queued} events queued",
                    name=endpoint.name,
                    failures=self.failures,
                    url=endpoint.url,
                    problem=problem,
                    maxBackoff=endpoint.maxBackoff,
                    queued=len(self._queue),
                )
            else:
                log.debug(
                    "notifications to {name}: delivery failed ({problem}); retrying in {delay}s",
                    name=endpoint.name,
                    problem=problem,
                    delay=delay,
                )
            await deferLater(self._clock, delay)
            delay = min(delay * 2, endpoint.maxBackoff)

    async def _deliver(self, batch):
        """POST C{batch}; return None if it was delivered, else what went wrong."""
        attempt = ensureDeferred(self._post(envelope(batch)))
        attempt.addTimeout(self._endpoint.timeout, self._clock, _noAnswer)
        try:
            code = await attempt
        except TimeoutError:
            return f"no answer within {self._endpoint.timeout}s"
        except Exception as e:
            # A cancelled request may fail with its own error, not CancelledError.
            if self._stopped:
                raise CancelledError() from e
            return f"{type(e).__name__}: {e}"
        if 200 <= code < 300:
            return None
        return f"answered {code}"

    async def _post(self, body):
        response = await self._client.post(
            self._endpoint.url, data=body, headers=self._headers, allow_redirects=False
        )
        # Read (and drop) the answer, so that the connection can be reused.
        await treq.collect(response, lambda data: None)
        return response.code


def _noAnswer(result, timeout):
    """Whatever a request cut short by its timeout failed with, it timed out."""
    raise TimeoutError(timeout, "notification delivery")
