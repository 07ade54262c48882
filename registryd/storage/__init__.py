"""The registry's services over a storage driver, in CNCF Distribution's layout."""
