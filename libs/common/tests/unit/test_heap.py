"""The collector's settings a service process settles into once it is up."""

from __future__ import annotations

import gc

from yummi_common.heap import YOUNG_GENERATION_THRESHOLD, settle_heap


def test_settling_freezes_what_lives_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()  # an app started earlier in this test process may have settled it already
    try:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)  # CPython's defaults
        kept = [["lives as long as the process"]]  # lists are always tracked by the collector
        assert any(o is kept for o in gc.get_objects())
        settle_heap()
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, 10, 10)
        assert YOUNG_GENERATION_THRESHOLD > 700
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: no generation holds it
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
