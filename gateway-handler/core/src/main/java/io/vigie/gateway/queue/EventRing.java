package io.vigie.gateway.queue;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A bounded multi-producer, single-consumer queue of request events stored inline in
 * preallocated arrays (a Vyukov-style ring: one sequence number per slot).
 *
 * <p>{@link #tryClaim()} never blocks and never allocates: it claims a slot with one CAS, or
 * returns -1 when the ring is full (the caller counts a drop). The producer then writes the
 * slot's fields and {@link #publish publishes} it; no caller code runs between claim and publish
 * (see {@code VigieAgent.offer}), so a claimed slot is always published. The one consumer polls
 * published slots in order with {@link #peek}/{@link #release}.
 *
 * <p>Slot fields live in flat arrays (index {@code slot * width + field}) so a slot costs no
 * object of its own.
 */
public final class EventRing {
    /** Long fields per slot. */
    public static final int LONGS = 6;
    /** Int fields per slot. */
    public static final int INTS = 6;
    /** String fields per slot, in canonical (proto field) order. */
    public static final int STRINGS = 11;

    // long fields
    public static final int L_EVENT_TIME_US = 0;
    public static final int L_LATENCY_US = 1;
    public static final int L_BACKEND_LATENCY_US = 2;
    public static final int L_REQUEST_BYTES = 3;
    public static final int L_RESPONSE_BYTES = 4;
    public static final int L_URI_HASH = 5;
    // int fields
    public static final int I_HTTP_METHOD = 0;
    public static final int I_HTTP_STATUS = 1;
    public static final int I_ERROR_CODE = 2;
    public static final int I_KEY_TYPE = 3;
    public static final int I_FLAGS = 4;
    public static final int I_TARGET_STATUS = 5;
    // string fields: application id, name, owner, API name, version, context, resource, tier,
    // tenant, API id, client address source (the encoder extracts, hashes or keeps it)

    private final int capacity;
    private final int mask;
    private final AtomicLongArray sequences;
    private final AtomicLong tail = new AtomicLong();
    /** Consumer position; written by the consumer only, read by {@link #size()}. */
    private volatile long head;

    /** Long fields: slot * LONGS + i. Written by the producer before publish. */
    public final long[] longs;
    /** Int fields: slot * INTS + i. */
    public final int[] ints;
    /** String fields: slot * STRINGS + i. */
    public final String[] strings;
    /**
     * The handler-wide number of each slot's event (a sidecar target's own queue, filled by the
     * fan-out: the same event has the same number in every target's queue); {@code null} for the
     * agent's queue, which the request path writes.
     */
    public final long[] numbers;

    /** A ring of at least {@code minCapacity} slots (rounded up to a power of two). */
    public EventRing(int minCapacity) {
        this(minCapacity, false);
    }

    /** A ring of at least {@code minCapacity} slots, with an event number per slot if {@code numbered}. */
    public EventRing(int minCapacity, boolean numbered) {
        if (minCapacity < 2 || minCapacity > (1 << 24)) {
            throw new IllegalArgumentException("ring capacity must be within 2..16777216, got " + minCapacity);
        }
        int cap = Integer.highestOneBit(minCapacity - 1) << 1;
        this.capacity = cap;
        this.mask = cap - 1;
        this.sequences = new AtomicLongArray(cap);
        for (int i = 0; i < cap; i++) {
            sequences.set(i, i);
        }
        this.longs = new long[cap * LONGS];
        this.ints = new int[cap * INTS];
        this.strings = new String[cap * STRINGS];
        this.numbers = numbered ? new long[cap] : null;
    }

    public int capacity() {
        return capacity;
    }

    /**
     * Claims the next free slot: returns its position (publish it with {@link #publish}), or -1
     * when the ring is full. Lock-free: retries only when another producer won the same slot.
     */
    public long tryClaim() {
        AtomicLongArray seqs = sequences;
        long pos = tail.get();
        while (true) {
            long seq = seqs.get((int) pos & mask);
            long dif = seq - pos;
            if (dif == 0) {
                if (tail.compareAndSet(pos, pos + 1)) {
                    return pos;
                }
                pos = tail.get();
            } else if (dif < 0) {
                return -1; // the slot still holds an event one lap behind: full
            } else {
                pos = tail.get();
            }
        }
    }

    /** Index of a claimed or peeked position's slot, for the field arrays. */
    public int slot(long pos) {
        return (int) pos & mask;
    }

    /** Makes a claimed slot visible to the consumer (release store). */
    public void publish(long pos) {
        sequences.lazySet((int) pos & mask, pos + 1);
    }

    /** Position of the oldest published event, or -1 when none is ready. Consumer only. */
    public long peek() {
        long pos = head;
        return sequences.get((int) pos & mask) == pos + 1 ? pos : -1;
    }

    /** Frees the slot at {@code pos} (the one {@link #peek} returned). Consumer only. */
    public void release(long pos) {
        int s = (int) pos & mask;
        java.util.Arrays.fill(strings, s * STRINGS, s * STRINGS + STRINGS, null);
        head = pos + 1;
        sequences.lazySet(s, pos + capacity);
    }

    /** Events waiting (approximate while producers run). */
    public int size() {
        long n = tail.get() - head;
        return (int) Math.max(0, Math.min(n, capacity));
    }
}
