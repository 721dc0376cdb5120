"""What a process built at start-up is left out of the collector's full passes; what comes later is not."""

from __future__ import annotations

import gc

from iotcloud.gc_freeze import freeze_startup_objects


class Node:
    def __init__(self, parent=None):
        self.parent, self.children = parent, []


def tracked(objects) -> int:
    """How many of `objects` the collector's generations hold, from one snapshot of all three: asked one
    generation at a time, a collection between two asks moved objects on and counted them twice."""
    ids = {id(o) for o in objects}
    return sum(1 for o in gc.get_objects() if id(o) in ids)


def test_start_up_objects_leave_the_generations_and_later_cycles_are_still_collected():
    built_at_start = [Node() for _ in range(2_000)]
    try:
        assert tracked(built_at_start) == len(built_at_start)
        assert freeze_startup_objects() >= len(built_at_start)
        assert tracked(built_at_start) == 0  # a full pass no longer walks them

        later = Node()
        later.children.append(Node(later))  # a cycle made while serving
        assert tracked([later]) == 1
        del later
        assert gc.collect() >= 2  # still found and freed
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
