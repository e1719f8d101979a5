package io.vigie.gateway.directive;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A token bucket as a generic cell rate algorithm: one {@code long} (the theoretical arrival
 * time), one CAS per request, no lock, no allocation. Lets {@code burst} requests through at
 * once, then one per {@code period / requests}.
 */
public final class TokenBucket {
    private final long intervalNanos;
    private final long toleranceNanos;
    private final AtomicLong tat;

    /**
     * @param requests requests allowed per period (at least 1)
     * @param periodNanos period length in nanoseconds
     * @param burst bucket size (0 = {@code requests})
     * @param nowNanos the monotonic clock now; the bucket starts full
     */
    public TokenBucket(long requests, long periodNanos, long burst, long nowNanos) {
        if (requests < 1 || periodNanos < 1) {
            throw new IllegalArgumentException("a limit needs requests >= 1 and a period >= 1 ns");
        }
        long size = burst > 0 ? burst : requests;
        this.intervalNanos = Math.max(1, periodNanos / requests);
        this.toleranceNanos = intervalNanos * (size - 1);
        this.tat = new AtomicLong(nowNanos);
    }

    /** Takes a token if one is there; {@code false} means the request is over the limit. */
    public boolean tryAcquire(long nowNanos) {
        while (true) {
            long t = tat.get();
            long start = t - nowNanos > 0 ? t : nowNanos;
            if (start - nowNanos > toleranceNanos) {
                return false;
            }
            if (tat.compareAndSet(t, start + intervalNanos)) {
                return true;
            }
        }
    }

    /** Nanoseconds between two tokens. */
    public long intervalNanos() {
        return intervalNanos;
    }
}
