"""Slices: what arrived between two snapshots, and the one view of it every page shows.

Owns slice specifications and links, the reader over the array cache, exports, and
the view service (whole run, latest slice and on-demand intervals alike).
"""
