package io.vigie.gateway.directive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.ManualClock;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.LocalQuota;
import org.junit.jupiter.api.Test;

/** A LIMIT as a share of a fleet-wide budget: the bucket's share, its re-tuning, the merge of several sidecars' quotas. */
class LocalQuotaTest {
    private final ManualClock clock = new ManualClock();

    private Directive.Builder limit(String id, int requests, int periodSeconds, int burst) {
        return Directive.newBuilder().setId(id).setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApplicationId("app-1")
                .setLimitRequests(requests).setLimitPeriodSeconds(periodSeconds).setLimitBurst(burst)
                .setExpiresAtUs(clock.wallMicros() + 3_600_000_000L);
    }

    private static LocalQuota quota(String id, long ppm, long epochUs) {
        return LocalQuota.newBuilder().setDirectiveId(id).setSharePpm((int) ppm).setEpochUs(epochUs).build();
    }

    private static DirectiveUpdate quotas(long version, LocalQuota... qs) {
        DirectiveUpdate.Builder u = DirectiveUpdate.newBuilder().setVersion(version);
        for (LocalQuota q : qs) {
            u.addQuotas(q);
        }
        return u.build();
    }

    /** Requests let through by {@code t} when offered {@code n} at once. */
    private static int admitted(DirectiveTable t, int n) {
        int ok = 0;
        for (int i = 0; i < n; i++) {
            if (t.check("app-1", "Orders", "v1") == null) {
                ok++;
            }
        }
        return ok;
    }

    private static int admitted(TokenBucket b, long now, int n) {
        int ok = 0;
        for (int i = 0; i < n; i++) {
            if (b.tryAcquire(now)) {
                ok++;
            }
        }
        return ok;
    }

    @Test
    void aShareScalesTheRateAndTheBurst() {
        long now = 5_000_000_000L;
        // 1,000 per 10 s, burst 1,000; a quarter: burst 250, then 25 per second
        TokenBucket b = new TokenBucket(1_000, 10_000_000_000L, 1_000, 250_000, now);
        assertEquals(250, admitted(b, now, 10_000));
        assertEquals(25, admitted(b, now + 1_000_000_000L, 10_000));
        // the whole budget is the old arithmetic, exact
        TokenBucket whole = new TokenBucket(1_000, 10_000_000_000L, 1_000, now);
        assertEquals(10_000_000L, whole.intervalNanos());
        assertEquals(1_000, admitted(whole, now, 10_000));
        // a share too small for one token of burst still lets one through, then one per interval
        TokenBucket tiny = new TokenBucket(10, 60_000_000_000L, 0, 1, now);
        assertEquals(1, admitted(tiny, now, 100));
        assertThrows(IllegalArgumentException.class, () -> new TokenBucket(10, 1_000, 0, 0, now));
        assertThrows(IllegalArgumentException.class, () -> new TokenBucket(10, 1_000, 0, 1_000_001, now));
    }

    @Test
    void extremeSharesOfExtremeLimitsSaturateInsteadOfOverflowing() {
        long now = Long.MAX_VALUE - 1_000; // a monotonic clock may be anywhere
        long tenYears = DirectiveLimits.MAX_LIMIT_PERIOD_SECONDS * 1_000_000_000L;
        TokenBucket slow = new TokenBucket(1, tenYears, 0xFFFF_FFFFL, 1, now);
        assertEquals(DirectiveLimits.MAX_INTERVAL_NANOS, slow.intervalNanos());
        assertTrue(slow.toleranceNanos() <= DirectiveLimits.MAX_TOLERANCE_NANOS);
        assertTrue(slow.tryAcquire(now));
        slow.retune(1_000_000, now);
        slow.retune(1, now);
        assertTrue(slow.nanosUntilToken(now) >= 0);
        TokenBucket fast = new TokenBucket(0xFFFF_FFFFL, 1_000_000_000L, 0xFFFF_FFFFL, 1, now);
        assertTrue(fast.intervalNanos() >= 1);
        assertTrue(fast.tryAcquire(now));
    }

    @Test
    void retuningKeepsTheTokensAlreadyTaken() {
        long now = 1_000_000_000L;
        // 100 per 100 s (one per second), burst 100, half of it: 50 at once
        TokenBucket b = new TokenBucket(100, 100_000_000_000L, 100, 500_000, now);
        assertEquals(50, admitted(b, now, 1_000));
        // the share moves to the whole budget: 50 tokens were taken, 50 are left, not 100
        b.retune(1_000_000, now);
        assertEquals(50, admitted(b, now, 1_000));
        // and back to a tenth (burst 10): 100 taken, a debt of 90 tokens to repay at 0.1/s first
        b.retune(100_000, now);
        assertEquals(0, admitted(b, now + 800_000_000_000L, 1_000), "still in debt after 800 s");
        assertTrue(admitted(b, now + 1_000_000_000_000L, 1_000) >= 1, "repaid after 1,000 s");
        // nothing taken: a new share leaves the bucket full
        TokenBucket idle = new TokenBucket(100, 100_000_000_000L, 100, 100_000, now);
        idle.retune(400_000, now + 10);
        assertEquals(40, admitted(idle, now + 10, 1_000));
    }

    @Test
    void aQuotaRetunesTheRuleInPlaceAndAFullBudgetWithoutOne() {
        DirectiveTable t = new DirectiveTable(clock, "main");
        t.apply(DirectiveUpdate.newBuilder().setVersion(1).setFull(true).addUpserts(limit("l1", 100, 60, 0))
                .build());
        assertEquals(TokenBucket.WHOLE, t.sharePpm("l1"));
        assertEquals(100, admitted(t, 1_000), "no quota: the whole budget here");
        DirectiveTable q = new DirectiveTable(clock, "main");
        q.apply(DirectiveUpdate.newBuilder().setVersion(1).setFull(true).addUpserts(limit("l1", 100, 60, 0))
                .addQuotas(quota("l1", 250_000, 10_000_000L)).build());
        assertEquals(250_000, q.sharePpm("l1"));
        assertEquals(25, admitted(q, 1_000), "the quota arrived with the directive: a quarter from the start");
        q.apply(quotas(1, quota("l1", 500_000, 15_000_000L)));
        assertEquals(500_000, q.sharePpm("l1"));
        assertEquals(25, admitted(q, 1_000), "half the burst, 25 already taken");
        clock.advanceMillis(60_000);
        assertEquals(50, admitted(q, 1_000), "a minute later: half the budget");
        assertEquals(1, q.version(), "a quota-only update keeps the table's version");
    }

    @Test
    void acrossSidecarsTheLatestEpochWinsThenTheSmallestShare() {
        DirectiveTable t = new DirectiveTable(clock, "main");
        DirectiveUpdate table = DirectiveUpdate.newBuilder().setVersion(1).setFull(true)
                .addUpserts(limit("l1", 1_000, 60, 0)).build();
        t.apply(0, table);
        t.apply(1, table);
        t.apply(0, quotas(1, quota("l1", 300_000, 10_000_000L)));
        t.apply(1, quotas(1, quota("l1", 280_000, 10_000_000L)));
        assertEquals(280_000, t.sharePpm("l1"), "same epoch: the smaller share");
        t.apply(0, quotas(1, quota("l1", 400_000, 15_000_000L)));
        assertEquals(400_000, t.sharePpm("l1"), "a later epoch wins, whoever sent it");
        t.apply(1, quotas(1, quota("l1", 350_000, 15_000_000L)));
        assertEquals(350_000, t.sharePpm("l1"));
        // a sidecar's own older epoch, arriving late, does not take its later one back
        t.apply(1, quotas(1, quota("l1", 100_000, 5_000_000L)));
        assertEquals(350_000, t.sharePpm("l1"));
        // a sidecar that removes the directive takes its quota with it; the other's remains
        t.apply(1, DirectiveUpdate.newBuilder().setVersion(2).addRemovals("l1").build());
        assertEquals(-1, t.sharePpm("l1"), "removed at version 2 by one sidecar: gone from the table");
    }

    @Test
    void aBadQuotaIsRejectedAloneAndCountedAndTheRestApplies() {
        DirectiveTable t = new DirectiveTable(clock, "main");
        t.apply(DirectiveUpdate.newBuilder().setVersion(1).setFull(true).addUpserts(limit("l1", 100, 60, 0))
                .addUpserts(limit("l2", 100, 60, 0).setApplicationId("app-2")).build());
        t.apply(DirectiveUpdate.newBuilder().setVersion(1)
                .addQuotas(quota("l1", 0, 10_000_000L))
                .addQuotas(quota("l1", 1_000_001, 10_000_000L))
                .addQuotas(quota("l1", 0xFFFF_FFFFL, 10_000_000L))
                .addQuotas(quota("l1", 500_000, -1))
                .addQuotas(quota("", 500_000, 10_000_000L))
                .addQuotas(quota("l2", 200_000, 10_000_000L)).build());
        assertEquals(5, t.rejectedQuotas());
        assertEquals(": local quota without directive id", t.lastQuotaRejection(), "the latest refusal, reported to the sidecars");
        assertEquals(TokenBucket.WHOLE, t.sharePpm("l1"));
        assertEquals(200_000, t.sharePpm("l2"));
        // the table never freezes: a removal still applies
        t.apply(DirectiveUpdate.newBuilder().setVersion(2).addRemovals("l1").addRemovals("l2").build());
        assertNull(t.check("app-1", "Orders", "v1"));
        assertEquals(-1, t.sharePpm("l2"));
    }

    @Test
    void aQuotaForABlockIsHarmless() {
        DirectiveTable t = new DirectiveTable(clock, "main");
        t.apply(DirectiveUpdate.newBuilder().setVersion(1).setFull(true)
                .addUpserts(limit("b1", 0, 0, 0).setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK))
                .addQuotas(quota("b1", 10, 10_000_000L)).build());
        assertEquals(-1, t.sharePpm("b1"));
        assertEquals(0, admitted(t, 10));
    }
}
