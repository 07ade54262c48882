"""
A SHA-256 whose state can be saved and resumed in another process.

Python's C{hashlib} objects cannot be pickled, so an upload continued by
another process would have to re-read and re-hash everything stored so far.
OpenSSL's low-level C{SHA256_CTX} is plain memory: L{ResumableSHA256} keeps
one through ctypes (the same SHA-NI code C{hashlib} uses), and its C{state()}
bytes restore it anywhere.  Without libcrypto, L{newHasher} falls back to
C{hashlib} and uploads resumed elsewhere are re-hashed at commit.
"""

import ctypes
import ctypes.util
import hashlib

_CONTEXT_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len


def _load():
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        for function in (library.SHA256_Init, library.SHA256_Update, library.SHA256_Final):
            function.restype = ctypes.c_int
        library.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        return library
    except (OSError, AttributeError):
        return None


_libcrypto = _load()


class ResumableSHA256:
    """C{hashlib}-like SHA-256 with a portable C{state()}."""

    name = "sha256"

    def __init__(self, state=None):
        if state is None:
            self._context = ctypes.create_string_buffer(_CONTEXT_SIZE)
            _libcrypto.SHA256_Init(self._context)
        else:
            if len(state) != _CONTEXT_SIZE:
                raise ValueError("not a SHA-256 state")
            self._context = ctypes.create_string_buffer(bytes(state), _CONTEXT_SIZE)

    def update(self, data):
        # ctypes releases the GIL for the call, so hashing in a thread runs
        # beside the reactor.
        _libcrypto.SHA256_Update(self._context, bytes(data), len(data))

    def state(self):
        return self._context.raw

    def hexdigest(self):
        copy = ctypes.create_string_buffer(self._context.raw, _CONTEXT_SIZE)
        out = ctypes.create_string_buffer(32)
        _libcrypto.SHA256_Final(out, copy)
        return out.raw.hex()


def newHasher():
    """A new SHA-256 hasher, resumable when libcrypto is at hand."""
    return ResumableSHA256() if _libcrypto is not None else hashlib.sha256()


def resumable(hasher):
    """Whether C{hasher}'s state can be saved."""
    return isinstance(hasher, ResumableSHA256)


def resumableSupported():
    return _libcrypto is not None
