"""registryd: an OCI Distribution 1.1 and Docker Registry V2 server on Twisted."""

__version__ = "0.1.0"
