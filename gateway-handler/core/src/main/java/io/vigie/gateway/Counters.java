package io.vigie.gateway;

import java.util.concurrent.atomic.LongAdder;

/**
 * The handler's own counters, cumulative since it started. The request path only increments
 * {@link LongAdder}s (no lock, no allocation once warmed up). Read through {@link #snapshot()},
 * JMX ({@link AgentJmx}) and the {@code GatewayReport} sent to the sidecar.
 *
 * <p>An agent has one set for what all its sidecars share (offered, the agent's queue full,
 * offered after close, adapter errors, rejected directives, unmatched requests) and one set per
 * sidecar target for what happens on the way to that sidecar (its queue full, sent, acked, lost
 * while disconnected or with a failed stream, reconnects). {@link #forTarget} and {@link #total}
 * combine them.
 */
public final class Counters {
    final LongAdder offered = new LongAdder();
    final LongAdder sent = new LongAdder();
    final LongAdder acked = new LongAdder();
    final LongAdder droppedQueueFull = new LongAdder();
    final LongAdder droppedDisconnected = new LongAdder();
    final LongAdder droppedSendFailed = new LongAdder();
    final LongAdder droppedOther = new LongAdder();
    final LongAdder reconnects = new LongAdder();
    final LongAdder batches = new LongAdder();
    final LongAdder streamErrors = new LongAdder();
    final LongAdder adapterErrors = new LongAdder();
    /** Directive upserts rejected (malformed or out of range); fed by the directive table. */
    final LongAdder directivesRejected = new LongAdder();
    /** Requests the gateway answered that belong to no API (no API name nor context): not recorded. */
    final LongAdder unmatched = new LongAdder();
    /** The same requests by path prefix (shared set only). */
    final UnmatchedPrefixes unmatchedPrefixes = new UnmatchedPrefixes();

    /** A consistent-enough copy of every counter (each read once). */
    public Snapshot snapshot(int queueDepth) {
        return new Snapshot(offered.sum(), sent.sum(), acked.sum(), droppedQueueFull.sum(),
                droppedDisconnected.sum(), droppedSendFailed.sum(), droppedOther.sum(), reconnects.sum(),
                batches.sum(), streamErrors.sum(), adapterErrors.sum(), directivesRejected.sum(), unmatched.sum(),
                queueDepth);
    }

    /**
     * What one sidecar target's account says: the shared figures ({@code shared}) plus its own
     * ({@code own}); a drop before the fan-out (the agent's queue full, offered after close) is a
     * drop for every target. {@code queueDepth} is the agent's queue plus the target's.
     */
    static Snapshot forTarget(Counters shared, Counters own, int queueDepth) {
        return new Snapshot(shared.offered.sum(), own.sent.sum(), own.acked.sum(),
                shared.droppedQueueFull.sum() + own.droppedQueueFull.sum(), own.droppedDisconnected.sum(),
                own.droppedSendFailed.sum(), shared.droppedOther.sum() + own.droppedOther.sum(),
                own.reconnects.sum(), own.batches.sum(), own.streamErrors.sum(), shared.adapterErrors.sum(),
                shared.directivesRejected.sum(), shared.unmatched.sum(), queueDepth);
    }

    /**
     * The agent's figures: the shared ones, and the per-target ones summed over the targets (with
     * one sidecar, that sidecar's account; with several, {@code sent} counts each copy).
     */
    static Snapshot total(Counters shared, Counters[] targets, int queueDepth) {
        long sent = 0, acked = 0, queueFull = shared.droppedQueueFull.sum(), disconnected = 0, sendFailed = 0;
        long other = shared.droppedOther.sum(), reconnects = 0, batches = 0, streamErrors = 0;
        for (Counters t : targets) {
            sent += t.sent.sum();
            acked += t.acked.sum();
            queueFull += t.droppedQueueFull.sum();
            disconnected += t.droppedDisconnected.sum();
            sendFailed += t.droppedSendFailed.sum();
            other += t.droppedOther.sum();
            reconnects += t.reconnects.sum();
            batches += t.batches.sum();
            streamErrors += t.streamErrors.sum();
        }
        return new Snapshot(shared.offered.sum(), sent, acked, queueFull, disconnected, sendFailed, other,
                reconnects, batches, streamErrors, shared.adapterErrors.sum(), shared.directivesRejected.sum(),
                shared.unmatched.sum(), queueDepth);
    }

    /** Counts an error the gateway adapter caught (it never lets one escape into mediation). */
    public void adapterError() {
        adapterErrors.increment();
    }

    /** Values of the counters at one moment. */
    public static final class Snapshot {
        /** Events offered to the queue. */
        public final long offered;
        /** Events written to a stream. */
        public final long sent;
        /** Events the sidecar acknowledged as applied. */
        public final long acked;
        public final long droppedQueueFull;
        public final long droppedDisconnected;
        /** Events written to a stream that failed before the sidecar acknowledged them. */
        public final long droppedSendFailed;
        /** Events left in the queue at shutdown, or offered after it. */
        public final long droppedOther;
        public final long reconnects;
        public final long batches;
        public final long streamErrors;
        public final long adapterErrors;
        /** Directive upserts the gateway rejected (the rest of their update applied). */
        public final long directivesRejected;
        /** Requests answered that matched no API at all (neither recorded nor dropped silently). */
        public final long unmatched;
        public final int queueDepth;

        Snapshot(long offered, long sent, long acked, long droppedQueueFull, long droppedDisconnected,
                long droppedSendFailed, long droppedOther, long reconnects, long batches, long streamErrors,
                long adapterErrors, long directivesRejected, long unmatched, int queueDepth) {
            this.offered = offered;
            this.sent = sent;
            this.acked = acked;
            this.droppedQueueFull = droppedQueueFull;
            this.droppedDisconnected = droppedDisconnected;
            this.droppedSendFailed = droppedSendFailed;
            this.droppedOther = droppedOther;
            this.reconnects = reconnects;
            this.batches = batches;
            this.streamErrors = streamErrors;
            this.adapterErrors = adapterErrors;
            this.directivesRejected = directivesRejected;
            this.unmatched = unmatched;
            this.queueDepth = queueDepth;
        }

        /** Every drop, whatever its cause. */
        public long dropped() {
            return droppedQueueFull + droppedDisconnected + droppedSendFailed + droppedOther;
        }

        @Override
        public String toString() {
            return "offered=" + offered + " sent=" + sent + " acked=" + acked + " dropped_queue_full="
                    + droppedQueueFull + " dropped_disconnected=" + droppedDisconnected + " dropped_send_failed="
                    + droppedSendFailed + " dropped_other=" + droppedOther + " reconnects=" + reconnects
                    + " batches=" + batches + " directives_rejected=" + directivesRejected + " unmatched=" + unmatched + " queue_depth=" + queueDepth;
        }
    }
}
