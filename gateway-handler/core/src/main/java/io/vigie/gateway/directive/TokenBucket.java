package io.vigie.gateway.directive;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A token bucket as a generic cell rate algorithm: one {@code long} (the theoretical arrival
 * time), one CAS per request, no lock, no allocation. Lets {@code burst} requests through at
 * once, then one per {@code period / requests}.
 *
 * <p>Overflow-safe for every value {@link DirectiveLimits} admits: the tolerance
 * {@code interval × (burst − 1)} saturates at {@link DirectiveLimits#MAX_TOLERANCE_NANOS}, and
 * times are only compared by difference (a monotonic clock may start anywhere).
 */
public final class TokenBucket {
    private final long intervalNanos;
    private final long toleranceNanos;
    private final AtomicLong tat;

    /**
     * @param requests requests allowed per period (at least 1)
     * @param periodNanos period length in nanoseconds (at least 1, below {@link DirectiveLimits#MAX_TOLERANCE_NANOS})
     * @param burst bucket size (0 = {@code requests})
     * @param nowNanos the monotonic clock now; the bucket starts full
     * @throws IllegalArgumentException for values outside those ranges
     */
    public TokenBucket(long requests, long periodNanos, long burst, long nowNanos) {
        if (requests < 1 || periodNanos < 1 || periodNanos >= DirectiveLimits.MAX_TOLERANCE_NANOS || burst < 0) {
            throw new IllegalArgumentException("a limit needs requests >= 1, burst >= 0 and a period of 1 ns up to 2^62 ns");
        }
        long size = burst > 0 ? burst : requests;
        this.intervalNanos = Math.max(1, periodNanos / requests);
        this.toleranceNanos = saturatedProduct(intervalNanos, size - 1, DirectiveLimits.MAX_TOLERANCE_NANOS);
        this.tat = new AtomicLong(nowNanos);
    }

    /** {@code a × b} for non-negative values, or {@code cap} when it exceeds {@code cap}. */
    static long saturatedProduct(long a, long b, long cap) {
        if (a == 0 || b == 0) {
            return 0;
        }
        if (a > cap / b) {
            return cap;
        }
        return Math.min(cap, a * b);
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

    /** Nanoseconds until {@link #tryAcquire} can succeed (0 = a token is there now). */
    public long nanosUntilToken(long nowNanos) {
        long wait = (tat.get() - nowNanos) - toleranceNanos;
        return wait > 0 ? wait : 0;
    }

    /** Nanoseconds between two tokens. */
    public long intervalNanos() {
        return intervalNanos;
    }

    /** The credit the bucket holds when full, in nanoseconds of tokens (saturated). */
    public long toleranceNanos() {
        return toleranceNanos;
    }
}
