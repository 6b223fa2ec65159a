"""Two workers writing events of the same targets at the same moment."""

from __future__ import annotations

import threading

from sender.ums.protocol import STATUS_BY_TYPE
from tests.helpers import events, post, record, targets

ROUNDS = 30
TARGETS_PER_ROUND = 20


def _round_batches(n: int) -> tuple[list[dict], list[dict]]:
    # Worker A brings the better status for even targets, worker B for odd ones,
    # so neither "last writer wins" nor "first writer wins" gives the right answer.
    a, b = [], []
    for t in range(TARGETS_PER_ROUND):
        user = f"r{n}-u{t}"
        high, low = [record(4, userid=user), record(6, userid=user)], [record(2, userid=user)]
        a += high if t % 2 == 0 else low
        b += low if t % 2 == 0 else high
    return a, b


def test_two_concurrent_workers_on_the_same_targets(app, engine):
    barrier = threading.Barrier(2)
    failures: list[str] = []

    def worker(batches: list[list[dict]]) -> None:
        client = app.test_client()
        for batch in batches:
            barrier.wait(timeout=30)
            response = post(client, batch)
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.get_data(as_text=True)}")

    rounds = [_round_batches(n) for n in range(ROUNDS)]
    threads = [
        threading.Thread(target=worker, args=([r[side] for r in rounds],)) for side in (0, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    current = targets(engine)
    assert len(current) == ROUNDS * TARGETS_PER_ROUND
    assert {STATUS_BY_TYPE[t.type] for t in current.values()} == {"clicked"}
    assert {t.event_count for t in current.values()} == {3}  # no update was lost
    assert len(events(engine)) == ROUNDS * TARGETS_PER_ROUND * 3
