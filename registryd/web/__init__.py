"""The HTTP face of the registry: Klein routes over the registry interfaces."""
