package io.vigie.gateway;

import io.vigie.wire.v1.Hello;
import java.util.concurrent.TimeUnit;

/**
 * The settings of {@link StreamSender}, in the units it works in (nanoseconds of the monotonic
 * clock, microseconds of the wall clock). Immutable; built with named setters from
 * {@link VigieAgent.Builder}'s millisecond settings. (A plain class, not a {@code record}: the
 * shipped bytecode targets Java 11.)
 */
final class SenderConfig {
    /** The first message of every stream. */
    final Hello hello;
    /** How the encoder writes the client's address ({@code vigie.capture.client-ip}). */
    final ClientIp clientIp;
    /** Events per batch at most (the sidecar's Welcome may lower it). */
    final int batchMaxEvents;
    /** A batch is sent at the latest this long after its first event. */
    final long flushNanos;
    /** Interval of the {@code GatewayReport}s. */
    final long reportNanos;
    /** First reconnect delay; doubles up to {@link #backoffMaxNanos}. */
    final long backoffInitialNanos;
    final long backoffMaxNanos;
    /** While disconnected, events older than this are dropped (counted). */
    final long holdMicros;

    private SenderConfig(Builder b) {
        this.hello = b.hello;
        this.clientIp = b.clientIp;
        this.batchMaxEvents = b.batchMaxEvents;
        this.flushNanos = b.flushNanos;
        this.reportNanos = b.reportNanos;
        this.backoffInitialNanos = b.backoffInitialNanos;
        this.backoffMaxNanos = b.backoffMaxNanos;
        this.holdMicros = b.holdMicros;
    }

    static Builder builder(Hello hello, ClientIp clientIp) {
        return new Builder(hello, clientIp);
    }

    /** Named settings; the defaults are the agent's. */
    static final class Builder {
        private final Hello hello;
        private final ClientIp clientIp;
        private int batchMaxEvents = 4_096;
        private long flushNanos = TimeUnit.MILLISECONDS.toNanos(5);
        private long reportNanos = TimeUnit.SECONDS.toNanos(5);
        private long backoffInitialNanos = TimeUnit.MILLISECONDS.toNanos(100);
        private long backoffMaxNanos = TimeUnit.MILLISECONDS.toNanos(500);
        private long holdMicros = TimeUnit.SECONDS.toMicros(10);

        private Builder(Hello hello, ClientIp clientIp) {
            this.hello = hello;
            this.clientIp = clientIp;
        }

        Builder batchMaxEvents(int v) {
            batchMaxEvents = v;
            return this;
        }

        Builder flushIntervalMs(long ms) {
            flushNanos = TimeUnit.MILLISECONDS.toNanos(ms);
            return this;
        }

        Builder reportIntervalMs(long ms) {
            reportNanos = TimeUnit.MILLISECONDS.toNanos(ms);
            return this;
        }

        Builder backoffMs(long initialMs, long maxMs) {
            backoffInitialNanos = TimeUnit.MILLISECONDS.toNanos(initialMs);
            backoffMaxNanos = TimeUnit.MILLISECONDS.toNanos(maxMs);
            return this;
        }

        Builder disconnectedHoldMs(long ms) {
            holdMicros = TimeUnit.MILLISECONDS.toMicros(ms);
            return this;
        }

        SenderConfig build() {
            return new SenderConfig(this);
        }
    }
}
