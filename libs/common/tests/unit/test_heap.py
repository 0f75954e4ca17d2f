"""The collector's settings a service process settles into once it is up."""

from __future__ import annotations

import gc

from yummi_common.heap import YOUNG_GENERATION_THRESHOLD, settle_heap


def test_settling_freezes_what_lives_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        kept = [["lives as long as the process"]]  # lists are always tracked by the collector
        assert any(o is kept for o in gc.get_objects())
        settle_heap()
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, before[1], before[2])
        assert YOUNG_GENERATION_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: no generation holds it
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
