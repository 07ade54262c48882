"""
Authentication and authorization, on twisted.cred.

A request needs a list of L{Access}es (L{registryd.auth.access}); an
L{IAccessController} decides from the request's headers alone whether the
caller holds them, before any byte of a body is accepted.
"""
