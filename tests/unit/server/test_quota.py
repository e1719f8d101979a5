"""The local quotas of a LIMIT (``vigie.server.quota.QuotaBook``) on a moved clock: the demand
window, a handler's restart, channels, a gateway that leaves, and the shares against a naive
twin of the formula. The real processes are in tests/e2e/test_fleet_quota.py and the handler's
FleetQuotaE2ETest."""

from __future__ import annotations

from vigie.server.quota import WHOLE_PPM, GatewaySeen, QuotaBook, shares
from vigie.v1 import directives_pb2 as dpb


class MovedClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def wall(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


def limit(did: str = "l1", channel: str = "") -> dpb.Directive:
    return dpb.Directive(
        id=did, action=dpb.DIRECTIVE_ACTION_LIMIT, limit_requests=100, limit_period_seconds=60,
        application_id="app", channel=channel,
    )  # fmt: skip


def seen(gw: str, matched: int, did: str = "l1", channel: str = "main") -> GatewaySeen:
    return GatewaySeen(gw, channel, (dpb.DirectiveHits(directive_id=did, passed=matched),))


def naive(demand: dict[str, int], floor: float) -> dict[str, float]:
    total = sum(demand.values())
    n = len(demand)
    return {g: (floor / n + (1 - floor) * d / total) if total else 1 / n for g, d in demand.items()}


def test_shares_match_the_naive_formula_and_never_exceed_the_budget() -> None:
    for demand in (
        {"a": 1, "b": 1},
        {"a": 999, "b": 1, "c": 0},
        {"a": 3, "b": 7, "c": 11, "d": 13},
    ):
        for floor in (0.0, 0.1, 0.5, 1.0):
            got = shares(demand, floor)
            assert sum(got.values()) <= WHOLE_PPM
            for g, want in naive(demand, floor).items():
                # rounded down, and at least 1 ppm kept for each gateway
                assert abs(got[g] - want * WHOLE_PPM) <= len(demand)


class Book:
    def __init__(self, trust: bool = True) -> None:
        self.clock = MovedClock()
        self.book = QuotaBook(self.clock, 1.0, 3.0, 0.2, trust)

    def tick(self, *gateways: GatewaySeen) -> int:
        self.clock.t += 1.0
        epoch = self.book.epoch_us()
        self.book.sample(epoch, gateways)
        return epoch

    def share(self, gw: str, connected: dict[str, str], d: dpb.Directive | None = None) -> int:
        epoch = self.book.epoch_us()
        q = self.book.quotas_for(gw, connected[gw], connected, [d or limit()], epoch)
        return q[0].share_ppm if q else -1


MAIN = {"gw-1": "main", "gw-2": "main"}


def test_demand_is_counted_over_the_window_then_forgotten() -> None:
    b = Book()
    b.tick(seen("gw-1", 0), seen("gw-2", 0))  # baselines
    assert b.share("gw-1", MAIN) == 500_000  # no demand yet: equal
    b.tick(seen("gw-1", 90), seen("gw-2", 10))
    assert b.share("gw-1", MAIN) == 100_000 + 720_000
    assert b.share("gw-2", MAIN) == 100_000 + 80_000
    # the same counts for 4 s: nothing new, the window (3 s) empties, equal again
    for _ in range(4):
        b.tick(seen("gw-1", 90), seen("gw-2", 10))
    assert b.share("gw-1", MAIN) == 500_000


def test_a_handler_restart_counts_from_zero_again() -> None:
    b = Book()
    b.tick(seen("gw-1", 1_000_000), seen("gw-2", 0))  # a long-running handler's first count
    assert b.share("gw-1", MAIN) == 500_000, "the first count is a baseline, not demand"
    b.tick(seen("gw-1", 30), seen("gw-2", 10))  # gw-1 restarted: 30 since
    assert b.share("gw-1", MAIN) == 100_000 + 600_000


def test_sampling_is_once_per_epoch() -> None:
    b = Book()
    epoch = b.tick(seen("gw-1", 0), seen("gw-2", 0))
    b.book.sample(epoch, [seen("gw-1", 500), seen("gw-2", 0)])  # another stream, same epoch
    assert b.share("gw-1", MAIN) == 500_000


def test_channels_and_gateways_that_leave() -> None:
    b = Book()
    connected = {"gw-1": "main", "gw-2": "main", "gw-s": "sale"}
    b.tick(seen("gw-1", 0), seen("gw-2", 0), seen("gw-s", 0, channel="sale"))
    # a LIMIT of every channel shares among all three; of "main", between the two of main
    assert b.share("gw-1", connected) == WHOLE_PPM // 3
    assert b.share("gw-1", connected, limit(channel="main")) == 500_000
    assert b.share("gw-s", connected, limit(channel="main")) == -1  # does not apply there
    b.tick(seen("gw-1", 40), seen("gw-2", 0), seen("gw-s", 60, channel="sale"))
    b.tick(seen("gw-1", 40))  # gw-2 and gw-s left: their counts are forgotten
    assert b.share("gw-1", {"gw-1": "main"}) == WHOLE_PPM
    assert ("gw-s", "l1") not in b.book._demand


def test_only_known_limits_and_plausible_counts_are_sampled() -> None:
    b = Book()
    epoch = b.book.epoch_us() + 1_000_000
    b.clock.t += 1.0
    b.book.sample(epoch, [seen("gw-1", 0, did="other"), seen("gw-2", 0)], {"l1"})
    assert ("gw-1", "other") not in b.book._demand and ("gw-2", "l1") in b.book._demand
    b.tick(seen("gw-1", 0), seen("gw-2", 0))
    b.tick(seen("gw-1", 2**41), seen("gw-2", 10))  # absurd: not kept, gw-2's demand stands
    assert b.share("gw-2", MAIN) == 100_000 + 800_000


def test_untrusted_reports_give_equal_shares() -> None:
    b = Book(trust=False)
    b.tick(seen("gw-1", 0), seen("gw-2", 0))
    b.tick(seen("gw-1", 10**9), seen("gw-2", 1))
    assert b.share("gw-1", MAIN) == b.share("gw-2", MAIN) == 500_000


def test_a_block_gets_no_quota() -> None:
    b = Book()
    block = dpb.Directive(id="b1", action=dpb.DIRECTIVE_ACTION_BLOCK, application_id="app")
    assert b.share("gw-1", MAIN, block) == -1
