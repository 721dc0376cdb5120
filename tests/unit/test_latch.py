import threading

from commands.latch import Latch


def test_a_latch_times_out_until_set_and_then_stays_set():
    latch = Latch()
    assert not latch.is_set()
    assert latch.wait(0.01) is False
    latch.set()
    latch.set()  # idempotent: a second answer must not raise on the link's thread
    assert latch.is_set()
    assert latch.wait(0) is True
    assert latch.wait() is True


def test_a_set_from_another_thread_wakes_the_waiter():
    latch, woke = Latch(), []
    waiter = threading.Thread(target=lambda: woke.append(latch.wait(10)))
    waiter.start()
    threading.Timer(0.05, latch.set).start()
    waiter.join(10)
    assert woke == [True]
