package io.vigie.gateway.directive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class TokenBucketTest {
    private static final long SECOND = 1_000_000_000L;

    @Test
    void letsTheBurstThroughThenRefuses() {
        TokenBucket b = new TokenBucket(10, SECOND, 5, 0);
        for (int k = 0; k < 5; k++) {
            assertTrue(b.tryAcquire(0));
        }
        assertFalse(b.tryAcquire(0));
    }

    @Test
    void refusesAtTheRightRateOverTime() {
        // 100 per second, bucket of 100, offered 1,000 per second for 10 s of injected time
        TokenBucket b = new TokenBucket(100, SECOND, 0, 0);
        int allowed = 0;
        for (long t = 0; t < 10 * SECOND; t += SECOND / 1000) {
            if (b.tryAcquire(t)) {
                allowed++;
            }
        }
        // the full bucket, then one token per 10 ms for 10 s
        assertEquals(100 + 1000, allowed, 1);
    }

    @Test
    void aQuietBucketRefillsToItsBurstOnly() {
        TokenBucket b = new TokenBucket(60, 60 * SECOND, 3, 0);
        for (int k = 0; k < 3; k++) {
            assertTrue(b.tryAcquire(0));
        }
        assertFalse(b.tryAcquire(0));
        long later = 3_600 * SECOND;
        int allowed = 0;
        while (b.tryAcquire(later)) {
            allowed++;
        }
        assertEquals(3, allowed);
        assertTrue(b.tryAcquire(later + SECOND));
        assertFalse(b.tryAcquire(later + SECOND));
    }

    @Test
    void concurrentTakersNeverExceedTheBucket() throws Exception {
        TokenBucket b = new TokenBucket(1_000, SECOND, 1_000, 0);
        java.util.concurrent.atomic.AtomicInteger allowed = new java.util.concurrent.atomic.AtomicInteger();
        Thread[] ts = new Thread[4];
        for (int k = 0; k < ts.length; k++) {
            ts[k] = new Thread(() -> {
                for (int i = 0; i < 10_000; i++) {
                    if (b.tryAcquire(0)) {
                        allowed.incrementAndGet();
                    }
                }
            });
            ts[k].start();
        }
        for (Thread t : ts) {
            t.join();
        }
        assertEquals(1_000, allowed.get());
    }

    @Test
    void theToleranceSaturatesInsteadOfOverflowing() {
        assertEquals(DirectiveLimits.MAX_TOLERANCE_NANOS,
                TokenBucket.saturatedProduct(864_000_000_000L, 99_999_999L, DirectiveLimits.MAX_TOLERANCE_NANOS));
        assertEquals(6, TokenBucket.saturatedProduct(2, 3, DirectiveLimits.MAX_TOLERANCE_NANOS));
        assertEquals(0, TokenBucket.saturatedProduct(0, Long.MAX_VALUE, DirectiveLimits.MAX_TOLERANCE_NANOS));
        // 100 a day with a burst of 1e8: the full bucket lets requests through
        TokenBucket b = new TokenBucket(100, 86_400 * SECOND, 100_000_000L, 0);
        assertEquals(DirectiveLimits.MAX_TOLERANCE_NANOS, b.toleranceNanos());
        for (int k = 0; k < 100_000; k++) {
            assertTrue(b.tryAcquire(0));
        }
    }

    @Test
    void theLargestAdmittedValuesWorkWhereverTheMonotonicClockStands() {
        long period = DirectiveLimits.MAX_LIMIT_PERIOD_SECONDS * SECOND;
        for (long now : new long[] {0, Long.MAX_VALUE - 10, Long.MIN_VALUE + 10, -1}) {
            TokenBucket one = new TokenBucket(1, period, 1, now);
            assertTrue(one.tryAcquire(now));
            assertFalse(one.tryAcquire(now + SECOND), "one token per 10 years");
            TokenBucket wide = new TokenBucket(DirectiveLimits.MAX_LIMIT_REQUESTS, period,
                    DirectiveLimits.MAX_LIMIT_BURST, now);
            for (int k = 0; k < 1_000; k++) {
                assertTrue(wide.tryAcquire(now));
            }
        }
    }

    @Test
    void nanosUntilTokenSaysWhenTheNextRequestPasses() {
        TokenBucket b = new TokenBucket(1, 10 * SECOND, 1, 0);
        assertEquals(0, b.nanosUntilToken(0));
        assertTrue(b.tryAcquire(0));
        assertEquals(10 * SECOND, b.nanosUntilToken(0));
        assertEquals(4 * SECOND, b.nanosUntilToken(6 * SECOND));
        assertFalse(b.tryAcquire(6 * SECOND));
        assertTrue(b.tryAcquire(10 * SECOND));
    }
}
