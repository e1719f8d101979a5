package io.vigie.gateway;

/**
 * Time, injected everywhere so tests move it instead of sleeping. Wall time is for event times,
 * report times and directive expiry (the contract's times are wall clock); monotonic time is for
 * intervals (flush, backoff, token buckets).
 */
public interface Clock {
    /** Wall clock, microseconds since the Unix epoch (UTC). */
    long wallMicros();

    /** Monotonic nanoseconds (arbitrary origin). */
    long monotonicNanos();

    /** The system's clocks. */
    Clock SYSTEM = new Clock() {
        @Override
        public long wallMicros() {
            return System.currentTimeMillis() * 1000L;
        }

        @Override
        public long monotonicNanos() {
            return System.nanoTime();
        }
    };
}
