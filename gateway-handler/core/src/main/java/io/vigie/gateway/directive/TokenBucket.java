package io.vigie.gateway.directive;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A token bucket as a generic cell rate algorithm: one {@code long} (the theoretical arrival
 * time), one CAS per request, no lock, no allocation. Lets {@code burst} requests through at
 * once, then one per {@code period / requests}.
 *
 * <p>A bucket can hold a share of its directive's budget (a LIMIT is a fleet-wide budget; the
 * sidecar gives each gateway its {@code LocalQuota}): it then lets {@code requests × share}
 * through per period with a burst of {@code max(1, burst × share)}. {@link #retune} changes the
 * share and keeps the tokens already taken, so that moving shares between gateways conserves the
 * fleet's budget: a gateway whose share shrinks below what it already used stays in debt until
 * its new rate repays it.
 *
 * <p>Overflow-safe for every value {@link DirectiveLimits} admits: the interval saturates at
 * {@link DirectiveLimits#MAX_INTERVAL_NANOS}, the tolerance {@code interval × (burst − 1)} and a
 * retuned debt at {@link DirectiveLimits#MAX_TOLERANCE_NANOS}, and times are only compared by
 * difference (a monotonic clock may start anywhere).
 */
public final class TokenBucket {
    /** Shares are in millionths of the directive's budget. */
    public static final long WHOLE = 1_000_000L;

    /** Interval and tolerance, replaced together (one volatile write) by {@link #retune}. */
    private static final class Params {
        final long intervalNanos;
        final long toleranceNanos;
        final long sharePpm;

        Params(long intervalNanos, long toleranceNanos, long sharePpm) {
            this.intervalNanos = intervalNanos;
            this.toleranceNanos = toleranceNanos;
            this.sharePpm = sharePpm;
        }
    }

    private final long requests;
    private final long periodNanos;
    private final long size;
    private volatile Params params;
    private final AtomicLong tat;

    /**
     * @param requests requests allowed per period (at least 1)
     * @param periodNanos period length in nanoseconds (at least 1, below {@link DirectiveLimits#MAX_TOLERANCE_NANOS})
     * @param burst bucket size (0 = {@code requests})
     * @param nowNanos the monotonic clock now; the bucket starts full
     * @throws IllegalArgumentException for values outside those ranges
     */
    public TokenBucket(long requests, long periodNanos, long burst, long nowNanos) {
        this(requests, periodNanos, burst, WHOLE, nowNanos);
    }

    /**
     * As above, holding {@code sharePpm} millionths of the budget (1 .. {@link #WHOLE}).
     *
     * @throws IllegalArgumentException for values outside those ranges
     */
    public TokenBucket(long requests, long periodNanos, long burst, long sharePpm, long nowNanos) {
        if (requests < 1 || periodNanos < 1 || periodNanos >= DirectiveLimits.MAX_TOLERANCE_NANOS || burst < 0) {
            throw new IllegalArgumentException("a limit needs requests >= 1, burst >= 0 and a period of 1 ns up to 2^62 ns");
        }
        checkShare(sharePpm);
        this.requests = requests;
        this.periodNanos = periodNanos;
        this.size = burst > 0 ? burst : requests;
        this.params = params(sharePpm);
        this.tat = new AtomicLong(nowNanos);
    }

    private static void checkShare(long sharePpm) {
        if (sharePpm < 1 || sharePpm > WHOLE) {
            throw new IllegalArgumentException("share " + sharePpm + " ppm is outside 1.." + WHOLE);
        }
    }

    private Params params(long sharePpm) {
        if (sharePpm == WHOLE) { // exact long arithmetic for the whole budget
            long interval = Math.max(1, periodNanos / requests);
            return new Params(interval, saturatedProduct(interval, size - 1, DirectiveLimits.MAX_TOLERANCE_NANOS),
                    WHOLE);
        }
        double share = sharePpm / (double) WHOLE;
        double interval = Math.max(1.0, periodNanos / (requests * share));
        long intervalNanos = (long) Math.min(interval, (double) DirectiveLimits.MAX_INTERVAL_NANOS);
        double tokens = Math.max(1.0, size * share);
        double tolerance = intervalNanos * (tokens - 1.0);
        long toleranceNanos = (long) Math.min(tolerance, (double) DirectiveLimits.MAX_TOLERANCE_NANOS);
        return new Params(intervalNanos, toleranceNanos, sharePpm);
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
        Params p = params;
        while (true) {
            long t = tat.get();
            long start = t - nowNanos > 0 ? t : nowNanos;
            if (start - nowNanos > p.toleranceNanos) {
                return false;
            }
            if (tat.compareAndSet(t, start + p.intervalNanos)) {
                return true;
            }
        }
    }

    /**
     * Holds {@code sharePpm} millionths of the budget from now on, keeping the tokens already
     * taken (the debt {@code tat − now}, counted in tokens of the old rate, becomes the same
     * number of tokens of the new rate, saturated). Not on the request path; a request racing
     * with it is judged by the old or the new rate.
     *
     * @throws IllegalArgumentException for a share outside 1 .. {@link #WHOLE}
     */
    public void retune(long sharePpm, long nowNanos) {
        checkShare(sharePpm);
        Params old = params;
        if (old.sharePpm == sharePpm) {
            return;
        }
        Params next = params(sharePpm);
        while (true) {
            long t = tat.get();
            long debt = t - nowNanos;
            long moved;
            if (debt <= 0) {
                moved = t; // nothing taken: the bucket is full under either rate
            } else {
                double tokens = debt / (double) old.intervalNanos;
                double nextDebt = Math.min(tokens * next.intervalNanos, (double) DirectiveLimits.MAX_TOLERANCE_NANOS);
                moved = nowNanos + (long) nextDebt;
            }
            if (tat.compareAndSet(t, moved)) {
                break;
            }
        }
        params = next;
    }

    /** Nanoseconds until {@link #tryAcquire} can succeed (0 = a token is there now). */
    public long nanosUntilToken(long nowNanos) {
        Params p = params;
        long wait = (tat.get() - nowNanos) - p.toleranceNanos;
        return wait > 0 ? wait : 0;
    }

    /** Nanoseconds between two tokens. */
    public long intervalNanos() {
        return params.intervalNanos;
    }

    /** The credit the bucket holds when full, in nanoseconds of tokens (saturated). */
    public long toleranceNanos() {
        return params.toleranceNanos;
    }

    /** The share of the directive's budget this bucket holds, in millionths. */
    public long sharePpm() {
        return params.sharePpm;
    }
}
