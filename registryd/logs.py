"""
The log observer the C{log} section of the configuration describes: the
level filter, text or JSON lines, and fixed fields on every event.

twistd chooses its own observer unless told otherwise; the plugin hands it
L{observerFactory} so the configuration decides, while twistd's C{--logfile}
still says where lines go.
"""

import sys

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEventAsClassicLogText,
    jsonFileLogObserver,
)
from twisted.python.logfile import LogFile


def _withFields(observer, fields):
    def emit(event):
        for key, value in fields.items():
            event.setdefault(key, value)
        observer(event)

    return emit


def _textWithFields(fields):
    suffix = "".join(f" {key}={value}" for key, value in fields.items())

    def format(event):
        line = formatEventAsClassicLogText(event)
        if line and suffix:
            line = line[:-1] + suffix + "\n"
        return line

    return format


def observerFactory(logConfig, logfile=None, nodaemon=True):
    """
    A zero-argument callable making the observer for C{logConfig}
    (L{registryd.config.LogConfig}), writing to standard output for
    C{logfile} C{"-"} (or none, in the foreground), else to that file.
    """

    def make():
        if logfile == "-" or (nodaemon and not logfile):
            stream = sys.stdout
        else:
            stream = LogFile.fromFullPath(logfile or "twistd.log")
        fields = dict(logConfig.fields)
        if logConfig.formatter == "json":
            observer = _withFields(jsonFileLogObserver(stream), fields)
        else:
            observer = FileLogObserver(stream, _textWithFields(fields))
        level = LogLevel.levelWithName(logConfig.level)
        return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])

    return make


# twistd takes its observer factory by dotted name, resolved after the plugin's
# options are parsed, so the plugin leaves the configured factory here and
# hands twistd this function's name.
_configured = None


def configuredObserver():
    """The observer the plugin's configuration chose (see L{chooseFor})."""
    return _configured()


def chooseFor(twistdOptions, logConfig):
    """Make twistd log as C{logConfig} says, unless its own options chose a logger."""
    global _configured
    if twistdOptions.get("logger") or twistdOptions.get("syslog"):
        return
    _configured = observerFactory(
        logConfig, twistdOptions.get("logfile"), twistdOptions.get("nodaemon")
    )
    twistdOptions["logger"] = f"{__name__}.configuredObserver"
