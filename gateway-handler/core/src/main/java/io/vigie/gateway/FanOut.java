package io.vigie.gateway;

import io.vigie.gateway.queue.EventRing;

/**
 * Moves each event of the agent's queue into the own bounded queue of every sidecar target, so
 * that a slow or dead sidecar costs drops counted for that sidecar alone and never holds back
 * the others or the request path (which only ever writes the agent's queue).
 *
 * <p>An event is copied field by field (its strings by reference: they are immutable) and the
 * agent's slot is freed at once. A target whose queue is full loses that event, counted in its
 * {@code droppedQueueFull}; the other targets get it. Each target then encodes its own batches
 * with its own stream dictionary (the wire's dictionary is per stream, and each target's streams
 * reconnect on their own). Each event is numbered (1, 2, ...) as it is moved, the same number
 * in every target's queue ({@link EventRing#numbers}): the sidecars of a fleet name the events by
 * it ({@code EventBatch.first_event}). Run by one thread only (the agent's queue has one consumer).
 */
final class FanOut {
    /** Events moved per {@link #step()} at most, so that the caller's loop stays responsive. */
    static final int MAX_PER_STEP = 4_096;

    private final EventRing source;
    private final EventRing[] queues;
    private final Counters[] counters;
    /** Number of the last event moved: each event gets the next one, in every target's queue. */
    private long number;

    FanOut(EventRing source, EventRing[] queues, Counters[] counters) {
        this.source = source;
        this.queues = queues;
        this.counters = counters;
    }

    /** Moves what is ready (at most {@link #MAX_PER_STEP}); {@code true} when it moved something. */
    boolean step() {
        int moved = 0;
        for (long pos; moved < MAX_PER_STEP && (pos = source.peek()) >= 0; moved++) {
            copyToTargets(source.slot(pos));
            source.release(pos);
        }
        return moved > 0;
    }

    /** Moves everything published so far (at shutdown). */
    void drainAll() {
        while (step()) {
            // until the agent's queue is empty
        }
    }

    private void copyToTargets(int from) {
        EventRing s = source;
        long num = ++number;
        for (int t = 0; t < queues.length; t++) {
            EventRing q = queues[t];
            long pos = q.tryClaim();
            if (pos < 0) {
                counters[t].droppedQueueFull.increment();
                continue;
            }
            int to = q.slot(pos);
            System.arraycopy(s.longs, from * EventRing.LONGS, q.longs, to * EventRing.LONGS, EventRing.LONGS);
            System.arraycopy(s.ints, from * EventRing.INTS, q.ints, to * EventRing.INTS, EventRing.INTS);
            System.arraycopy(s.strings, from * EventRing.STRINGS, q.strings, to * EventRing.STRINGS,
                    EventRing.STRINGS);
            q.numbers[to] = num;
            q.publish(pos);
        }
    }
}
