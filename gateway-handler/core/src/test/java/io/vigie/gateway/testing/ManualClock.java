package io.vigie.gateway.testing;

import io.vigie.gateway.Clock;
import java.util.concurrent.atomic.AtomicLong;

/** A clock that moves only when a test says so. */
public final class ManualClock implements Clock {
    private final AtomicLong wallMicros;
    private final AtomicLong nanos = new AtomicLong(1_000_000_000L);

    public ManualClock(long wallMicros) {
        this.wallMicros = new AtomicLong(wallMicros);
    }

    public ManualClock() {
        this(1_700_000_000_000_000L);
    }

    @Override
    public long wallMicros() {
        return wallMicros.get();
    }

    @Override
    public long monotonicNanos() {
        return nanos.get();
    }

    /** Moves both clocks forward. */
    public void advanceMillis(long ms) {
        advanceNanos(ms * 1_000_000L);
    }

    public void advanceNanos(long ns) {
        nanos.addAndGet(ns);
        wallMicros.addAndGet(ns / 1000);
    }
}
