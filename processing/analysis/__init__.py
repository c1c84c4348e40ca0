"""Analysis: a slice through the detector plugin, trending, checks and alarms.

Owns the one slice analysis used live and on demand, the trend stores, the check
engine and the alarm manager.
"""
