"""``overwatch db rebuild``: recreate every run's metadata from the snapshot files.

The snapshots on disk are the source of truth. Rebuilding forgets all runs in
the database (users stay) and processes every snapshot
again, in time order, exactly as the live pipeline does. Where a cache file of
a snapshot is present its raw content is taken from it (``eff - offsets``)
instead of re-reading the ROOT file, so a rebuild after a lost database is
fast; a deleted or damaged cache file is recreated from the snapshot. With
``reread`` the whole cache is deleted first and every file read again (also
recovering notes about unreadable objects inside snapshots, which the cache
does not keep).

Plugins, trends and checks run as in the live pipeline: every trend store is
started afresh and refilled point by point in time order (the same series
as before, and then it keeps growing when processing resumes), and each
subsystem's latest-slice results (quality, check results, annotations) are
recomputed. Alarms are not: they record what shifters were told when it
happened, so a rebuild neither forgets them nor raises them a second time
(alarms and check states stay as they are).

The checks file is validated before anything is forgotten: an invalid one
stops the rebuild with its file, line and key.

Stop the processing service before rebuilding: both would write the same runs.

A progress bar on stderr counts the snapshots handled (processed or bad) of
those found on disk at the start, when stderr is a terminal
(:func:`overwatch.progress.progress_bar`; ``progress`` forces it on or off).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import ZODB

from overwatch.config import ProcessingSettings
from overwatch.progress import progress_bar
from overwatch.store.layout import DataDir
from processing.analysis.checks import CheckEngine
from processing.analysis.live import load_engine
from processing.ingest import records
from processing.ingest.scan import Scanner
from processing.pipeline import PassReport, Pipeline

log = logging.getLogger(__name__)


def rebuild(
    data_dir: str | Path,
    db: ZODB.DB,
    settings: ProcessingSettings | None = None,
    *,
    reread: bool = False,
    checks: CheckEngine | None = None,
    timezone: str = "UTC",
    progress: bool | None = None,
) -> PassReport:
    """Forget all runs, then process every snapshot on disk; returns what was done.

    ``timezone`` is the zone of names in run folders that declare none
    (:mod:`overwatch.store.archive`). ``checks`` defaults to ``settings.checks_file`` (raises ``CheckConfigError``
    if it is invalid, before anything is changed). ``progress``: the bar on stderr
    (None: only on a terminal).
    """
    settings = settings or ProcessingSettings()
    data = DataDir(data_dir)
    if not data.root.is_dir():
        raise FileNotFoundError(f"data directory {data.root} does not exist")
    if checks is None:
        checks = load_engine(settings.checks_file)
    if reread:
        cache_root = data.cache_root
        if cache_root.exists():
            log.info("deleting the array cache %s", cache_root)
            shutil.rmtree(cache_root)
    records.clear_runs(db)
    pipeline = Pipeline(
        data_dir, db, settings, checks=checks, rebuild_trends=True, timezone=timezone
    )
    total = sum(len(listed) for listed in Scanner(data_dir).scan().values())
    with progress_bar(total, "rebuild", "snapshot", enabled=progress) as bar:
        pipeline.on_snapshot = lambda: bar.update(1)
        report = pipeline.run_until_idle()
    log.info(
        "rebuilt: %d snapshots processed, %d bad, %d failures",
        report.processed,
        report.bad,
        len(report.failed),
    )
    return report
