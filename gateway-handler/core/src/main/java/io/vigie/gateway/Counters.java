package io.vigie.gateway;

import java.util.concurrent.atomic.LongAdder;

/**
 * The handler's own counters, cumulative since it started. The request path only increments
 * {@link LongAdder}s (no lock, no allocation once warmed up). Read through {@link #snapshot()},
 * JMX ({@link AgentJmx}) and the {@code GatewayReport} sent to the sidecar.
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

    /** A consistent-enough copy of every counter (each read once). */
    public Snapshot snapshot(int queueDepth) {
        return new Snapshot(offered.sum(), sent.sum(), acked.sum(), droppedQueueFull.sum(),
                droppedDisconnected.sum(), droppedSendFailed.sum(), droppedOther.sum(), reconnects.sum(),
                batches.sum(), streamErrors.sum(), adapterErrors.sum(), directivesRejected.sum(), queueDepth);
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
        public final int queueDepth;

        Snapshot(long offered, long sent, long acked, long droppedQueueFull, long droppedDisconnected,
                long droppedSendFailed, long droppedOther, long reconnects, long batches, long streamErrors,
                long adapterErrors, long directivesRejected, int queueDepth) {
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
                    + " batches=" + batches + " directives_rejected=" + directivesRejected + " queue_depth=" + queueDepth;
        }
    }
}
