"""The twistd plugin's service, built in this process."""

import gc

from twisted.internet import reactor

from registryd import tap


def test_daemonFreezesWhatItLoaded(tmp_path, monkeypatch):
    """Once the reactor runs, what the daemon loaded is kept out of the collector's full passes."""
    options = tap.Options()
    options.parseOptions(["--storage-root", str(tmp_path), "--listen", "tcp:0:interface=127.0.0.1"])
    scheduled = []
    monkeypatch.setattr(reactor, "callWhenRunning", lambda f, *a, **kw: scheduled.append(f))
    service = tap.makeService(options)
    assert service.config.storage.rootdirectory == str(tmp_path)
    assert scheduled == [gc.freeze]
