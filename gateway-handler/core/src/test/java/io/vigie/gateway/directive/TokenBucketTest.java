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
}
