"""Overwatch shared core: settings, timestamps, histograms, storage; no web, ZMQ or scheduler."""
