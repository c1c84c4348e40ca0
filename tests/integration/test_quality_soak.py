"""Soak: thirty simulated minutes of clean data under real timing raise nothing.

Snapshots of every built-in subsystem come at uneven whole-second intervals with
Poisson-fluctuating events (``tests.jittered``), through the real pipeline with the
shipped checks and alarm manager. Zero alarms, and no histogram is ever Bad.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.jittered import run_jittered

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_thirty_jittered_minutes_of_clean_data_raise_no_alarm(tmp_path) -> None:
    found = run_jittered(tmp_path, minutes=30)
    spread = np.array(found.steps)
    assert spread.min() <= 0.5 * spread.mean() and spread.max() >= 1.5 * spread.mean()
    assert found.bad == []
    assert found.alarms == 0 and found.notices == 0
    # The checks did decide (Good), not only "cannot tell", on every subsystem.
    assert all(count > 0 for count in found.good.values()), found.good
