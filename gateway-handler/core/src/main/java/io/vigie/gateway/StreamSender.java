package io.vigie.gateway;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.vigie.gateway.directive.DirectiveTable;
import io.vigie.gateway.queue.EventRing;
import io.vigie.gateway.wire.BatchEncoder;
import io.vigie.wire.v1.EventBatch;
import io.vigie.wire.v1.GatewayMessage;
import io.vigie.wire.v1.GatewayReport;
import io.vigie.wire.v1.Hello;
import io.vigie.wire.v1.SidecarMessage;
import io.vigie.wire.v1.TelemetryGrpc;
import io.vigie.wire.v1.Welcome;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The sender of one sidecar target: drains that target's own queue, dictionary-encodes events
 * into columnar batches and writes them to one bidirectional {@code Telemetry.Stream}; applies
 * the directive updates (as this target's source in the directive table) and acks coming back.
 * On failure it backs off (doubling, capped), reconnects and starts a new dictionary. Each batch
 * names its first event ({@code EventBatch.first_event}: the fan-out's number, or this sender's
 * own count when it reads the agent's queue) and holds consecutive events only. Every
 * stream is completed exactly once ({@link Session#finish}). Its counters are its own; its
 * {@code GatewayReport} adds the figures all targets share ({@link Counters#forTarget}).
 *
 * <p>Only this target's sender thread calls {@link #step()}; gRPC callbacks only set fields that
 * the next step reads. Tests drive {@link #step()} by hand with an injected clock.
 */
final class StreamSender {
    private static final Logger LOG = Logger.getLogger(StreamSender.class.getName());
    /** How long a Welcome may take before the stream is given up. */
    static final long WELCOME_TIMEOUT_NANOS = 5_000_000_000L;
    /** How long a gracefully completed stream may take to deliver its last acks. */
    static final long DRAIN_TIMEOUT_NANOS = 5_000_000_000L;
    static final int PROTOCOL_VERSION = 1;

    enum State { DISCONNECTED, CONNECTING, CONNECTED, CLOSED }

    private final EventRing ring;
    private final Counters counters;
    private final Counters shared;
    private final EventRing agentQueue;
    private final DirectiveTable directives;
    private final int source;
    private final Clock clock;
    private final ManagedChannel channel;
    private final Hello hello;
    private final ClientIp clientIp;
    private final int batchMaxEvents;
    private final long flushNanos;
    private final long reportNanos;
    private final long backoffInitialNanos;
    private final long backoffMaxNanos;
    private final long holdMicros;

    private Session session;
    private final List<Session> retiring = new ArrayList<>();
    private long backoffNanos;
    private long nextAttemptNanos;
    private long nextReportNanos;
    private long nextExpiryNanos;
    private boolean everConnected;
    /** Events taken from a queue whose slots are not numbered (one target: the agent's own). */
    private long taken;
    private volatile State state = State.DISCONNECTED;

    /**
     * @param ring this target's own queue (filled by the {@link FanOut}), or the agent's queue
     *     itself when this is the only target
     * @param counters this target's own counters
     * @param shared the counters every target shares (reported with this target's)
     * @param agentQueue the agent's queue, whose depth the report adds to this target's
     * @param source this target's number as a directive source ({@link DirectiveTable#apply(int, io.vigie.wire.v1.DirectiveUpdate)})
     */
    StreamSender(EventRing ring, Counters counters, Counters shared, EventRing agentQueue, DirectiveTable directives,
            int source, Clock clock, ManagedChannel channel, SenderConfig config) {
        this.ring = ring;
        this.counters = counters;
        this.shared = shared;
        this.agentQueue = agentQueue;
        this.directives = directives;
        this.source = source;
        this.clock = clock;
        this.channel = channel;
        this.hello = config.hello;
        this.clientIp = config.clientIp;
        this.batchMaxEvents = config.batchMaxEvents;
        this.flushNanos = config.flushNanos;
        this.reportNanos = config.reportNanos;
        this.backoffInitialNanos = config.backoffInitialNanos;
        this.backoffMaxNanos = config.backoffMaxNanos;
        this.holdMicros = config.holdMicros;
        this.backoffNanos = backoffInitialNanos;
        long now = clock.monotonicNanos();
        this.nextAttemptNanos = now;
        this.nextReportNanos = now + reportNanos;
        this.nextExpiryNanos = now;
    }

    State state() {
        return state;
    }

    /**
     * One round of work: housekeeping, stream state, draining. Returns {@code true} when it did
     * something (the caller then runs again at once instead of parking).
     */
    boolean step() {
        long now = clock.monotonicNanos();
        boolean worked = false;
        if (now - nextExpiryNanos >= 0) {
            directives.expire();
            nextExpiryNanos = now + 1_000_000_000L;
        }
        worked |= reapRetiring(now);
        Session s = session;
        if (s != null && s.failed) {
            endSession(s, now, true);
            s = null;
            worked = true;
        }
        if (s == null) {
            if (now - nextAttemptNanos >= 0) {
                s = openSession(now);
                worked = true;
            }
        } else if (!s.welcomed && now - s.openedNanos > WELCOME_TIMEOUT_NANOS) {
            s.fail(new IllegalStateException("no Welcome from the sidecar within 5 s"));
            return true;
        }
        if (s != null && s.welcomed) {
            if (s.encoder == null) {
                onWelcome(s, now);
            }
            worked |= drainInto(s, now, false);
            if (now - nextReportNanos >= 0 && s.call.isReady()) {
                s.send(GatewayMessage.newBuilder().setReport(report()).build());
                nextReportNanos = now + reportNanos;
                worked = true;
            }
        } else {
            worked |= discardStale();
        }
        return worked;
    }

    /**
     * Sends what is queued, completes the stream, and stops. Waits for a slow stream at most
     * {@code maxWaitNanos} of real time (this bounds how long the gateway's shutdown can take).
     */
    void shutdown(long maxWaitNanos) {
        Session s = session;
        long deadline = System.nanoTime() + maxWaitNanos;
        if (s != null && s.welcomed && !s.failed) {
            if (s.encoder == null) {
                onWelcome(s, clock.monotonicNanos());
            }
            while (ring.peek() >= 0 || s.encoder.count() > 0) {
                if (s.failed || System.nanoTime() - deadline > 0) {
                    break;
                }
                if (!drainInto(s, clock.monotonicNanos(), true)) {
                    Thread.onSpinWait();
                }
            }
            if (!s.failed) {
                s.send(GatewayMessage.newBuilder().setReport(report()).build());
            }
        }
        if (s != null) {
            s.finish(null);
        }
        session = null;
        long n = 0;
        for (long pos; (pos = ring.peek()) >= 0; ) {
            ring.release(pos);
            n++;
        }
        if (s != null && s.encoder != null) {
            n += s.encoder.count();
        }
        counters.droppedOther.add(n);
        state = State.CLOSED;
    }

    private Session openSession(long now) {
        state = State.CONNECTING;
        if (everConnected) {
            counters.reconnects.increment();
        }
        everConnected = true;
        channel.resetConnectBackoff(); // our own backoff decides when to try, not the channel's
        Session s = new Session(now);
        try {
            TelemetryGrpc.newStub(channel).stream(s);
            // the gateway's wall clock at sending, so that the sidecar can name a skewed clock
            s.send(GatewayMessage.newBuilder().setHello(hello.toBuilder().setClockUs(clock.wallMicros())).build());
        } catch (RuntimeException e) {
            s.fail(e);
        }
        session = s;
        return s;
    }

    private void onWelcome(Session s, long now) {
        Welcome w = s.welcome;
        int max = batchMaxEvents;
        if (w.getMaxBatchEvents() > 0) {
            max = Math.min(max, w.getMaxBatchEvents());
        }
        s.maxDictionary = w.getMaxDictionaryEntries() > 0 ? w.getMaxDictionaryEntries() : Integer.MAX_VALUE;
        s.encoder = new BatchEncoder(max, clientIp);
        state = State.CONNECTED;
        backoffNanos = backoffInitialNanos;
        LOG.log(Level.INFO, "vigie: streaming to sidecar {0}", w.getSidecarId());
    }

    /** Moves ready events into the batch and sends it when full or due (or {@code force}d). */
    private boolean drainInto(Session s, long now, boolean force) {
        BatchEncoder enc = s.encoder;
        boolean worked = false;
        boolean cut = false;
        while (!enc.isFull()) {
            long pos = ring.peek();
            if (pos < 0) {
                break;
            }
            if (enc.dictionarySize() + EventRing.STRINGS > s.maxDictionary) {
                // the sidecar's dictionary limit: send what we have, then start a new stream
                if (enc.count() > 0) {
                    sendBatch(s, enc);
                }
                endSession(s, now, false);
                nextAttemptNanos = now;
                return true;
            }
            long num = ring.numbers != null ? ring.numbers[ring.slot(pos)] : taken + 1;
            if (enc.count() > 0 && num != s.lastNumber + 1) {
                cut = true; // events dropped for this target: a batch holds consecutive numbers
                break;
            }
            if (enc.count() == 0) {
                s.batchStartNanos = now;
                enc.firstEvent(num);
            }
            enc.add(ring, ring.slot(pos));
            ring.release(pos);
            taken++;
            s.lastNumber = num;
            worked = true;
        }
        if (enc.count() > 0 && (force || cut || enc.isFull() || now - s.batchStartNanos >= flushNanos)) {
            if (s.call.isReady()) {
                sendBatch(s, enc);
                worked = true;
            }
        }
        return worked;
    }

    private void sendBatch(Session s, BatchEncoder enc) {
        int n = enc.count();
        EventBatch batch = enc.build(clock.wallMicros());
        if (s.send(GatewayMessage.newBuilder().setBatch(batch).build())) {
            s.sentEvents += n;
            counters.sent.add(n);
            counters.batches.increment();
        } else {
            counters.droppedSendFailed.add(n);
        }
    }

    /** While no stream is up, drops events older than the hold time (counted). */
    private boolean discardStale() {
        long oldest = clock.wallMicros() - holdMicros;
        boolean worked = false;
        for (long pos; (pos = ring.peek()) >= 0; ) {
            long t = ring.longs[ring.slot(pos) * EventRing.LONGS + EventRing.L_EVENT_TIME_US];
            if (holdMicros > 0 && t > oldest) {
                break;
            }
            ring.release(pos);
            taken++;
            counters.droppedDisconnected.increment();
            worked = true;
        }
        return worked;
    }

    private void endSession(Session s, long now, boolean failure) {
        if (failure) {
            counters.streamErrors.increment();
            LOG.log(Level.WARNING, "vigie: stream to the sidecar ended: {0}; retrying in {1} ms",
                    new Object[] {s.cause, backoffNanos / 1_000_000});
            nextAttemptNanos = now + backoffNanos;
            backoffNanos = Math.min(backoffMaxNanos, backoffNanos * 2);
        }
        if (s.encoder != null && s.encoder.count() > 0) {
            counters.droppedSendFailed.add(s.encoder.count()); // built but never sent
        }
        s.finish(failure ? s.cause : null);
        s.retiredNanos = now;
        retiring.add(s);
        if (session == s) {
            session = null;
        }
        state = State.DISCONNECTED;
    }

    /** Settles the accounts of ended streams once their response side is over (or timed out). */
    private boolean reapRetiring(long now) {
        boolean worked = false;
        for (Iterator<Session> it = retiring.iterator(); it.hasNext(); ) {
            Session s = it.next();
            if (s.responseDone || now - s.retiredNanos > DRAIN_TIMEOUT_NANOS) {
                long lost;
                synchronized (s) {
                    s.settled = true; // an ack arriving later moves its events back to acked
                    lost = s.sentEvents - s.ackedEvents;
                }
                if (lost > 0) {
                    counters.droppedSendFailed.add(lost);
                }
                it.remove();
                worked = true;
            }
        }
        return worked;
    }

    private GatewayReport report() {
        Counters.Snapshot c = Counters.forTarget(shared, counters,
                agentQueue == ring ? ring.size() : agentQueue.size() + ring.size());
        return GatewayReport.newBuilder()
                .setAtUs(clock.wallMicros())
                .setOffered(c.offered)
                .setSent(c.sent)
                .setDroppedQueueFull(c.droppedQueueFull)
                .setDroppedDisconnected(c.droppedDisconnected)
                .setDroppedSendFailed(c.droppedSendFailed)
                .setDroppedOther(c.droppedOther)
                .setReconnects(c.reconnects)
                .setQueueDepth(c.queueDepth)
                .addAllDirectiveHits(directives.hits())
                .addAllRejectedDirectives(directives.rejections())
                .setDirectivesRejected(c.directivesRejected)
                .setUnmatchedRequests(c.unmatched)
                .addAllUnmatchedPrefixes(shared.unmatchedPrefixes.report())
                .setQuotasRejected(directives.rejectedQuotas())
                .setLastQuotaRejection(directives.lastQuotaRejection())
                .build();
    }

    /** One bidirectional stream and its dictionary. */
    final class Session implements ClientResponseObserver<GatewayMessage, SidecarMessage> {
        final long openedNanos;
        /** Number of the last event put in a batch of this stream. */
        long lastNumber;
        ClientCallStreamObserver<GatewayMessage> call;
        BatchEncoder encoder;
        volatile Welcome welcome;
        volatile boolean welcomed;
        volatile boolean failed;
        volatile boolean responseDone;
        volatile Throwable cause;
        volatile long ackedEvents;
        int maxDictionary = Integer.MAX_VALUE;
        long sentEvents;
        boolean settled; // guarded by this: the drain is over, the unacked events counted lost
        long batchStartNanos;
        long retiredNanos;
        private final AtomicBoolean finished = new AtomicBoolean();

        Session(long openedNanos) {
            this.openedNanos = openedNanos;
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<GatewayMessage> requestStream) {
            this.call = requestStream;
        }

        @Override
        public void onNext(SidecarMessage m) {
            switch (m.getKindCase()) {
                case WELCOME:
                    welcome = m.getWelcome();
                    welcomed = true;
                    break;
                case DIRECTIVES:
                    try {
                        directives.apply(source, m.getDirectives());
                    } catch (RuntimeException e) {
                        LOG.log(Level.WARNING, "vigie: directive update refused", e);
                    }
                    break;
                case ACK:
                    onAck(m.getAck().getEventsApplied());
                    break;
                default:
                    break; // a newer sidecar's message: ignored
            }
        }

        /**
         * Counts what the sidecar says it applied. An ack that comes after the drain timeout
         * settled this stream (its unacked events already counted dropped) moves those events from
         * dropped to acked, so offered = acked + dropped stays exact.
         */
        private synchronized void onAck(long applied) {
            long before = ackedEvents;
            if (applied > before) {
                long more = applied - before;
                ackedEvents = applied;
                counters.acked.add(more);
                if (settled) {
                    counters.droppedSendFailed.add(-more);
                }
            }
        }

        @Override
        public void onError(Throwable t) {
            responseDone = true;
            fail(t);
        }

        @Override
        public void onCompleted() {
            responseDone = true;
            fail(new IllegalStateException("the sidecar ended the stream"));
        }

        void fail(Throwable t) {
            if (cause == null) {
                cause = t;
            }
            failed = true;
        }

        /** Writes one message; {@code false} when the stream is already broken. */
        boolean send(GatewayMessage m) {
            if (failed || finished.get()) {
                return false;
            }
            try {
                call.onNext(m);
                return true;
            } catch (RuntimeException e) {
                fail(e);
                return false;
            }
        }

        /** Completes this stream: exactly once, whichever path gets here first. */
        void finish(Throwable error) {
            if (!finished.compareAndSet(false, true) || call == null) {
                return;
            }
            try {
                if (error == null) {
                    call.onCompleted();
                } else {
                    call.cancel("vigie: stream abandoned", Status.fromThrowable(error).asRuntimeException());
                }
            } catch (RuntimeException e) {
                LOG.log(Level.FINE, "vigie: completing a broken stream", e);
            }
        }
    }
}
