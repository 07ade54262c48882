"""Storage drivers: the path-keyed stores everything else is built on."""
