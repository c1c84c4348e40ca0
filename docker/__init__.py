"""This folder is also the package ``overwatch.docker``: it ships supervisord.conf.template.

``pyproject.toml`` maps the package onto ``docker/`` so that the template stays
with the container files and still ships in the wheel (the Dockerfile and the
compose file do not); this file only makes the mapped package importable (see
``overwatch.resources``).
"""
