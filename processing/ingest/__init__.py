"""Ingest: from snapshot files on disk to cached effective cumulatives and their ZODB records.

Owns the scan of the data directory, the one uproot read of each snapshot, counter
resets, the array cache and its layouts, and the chain store of each (run, subsystem).
"""
