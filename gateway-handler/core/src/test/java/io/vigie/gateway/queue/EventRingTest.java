package io.vigie.gateway.queue;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class EventRingTest {
    @Test
    void capacityIsRoundedUpToAPowerOfTwo() {
        assertEquals(8, new EventRing(5).capacity());
        assertEquals(1024, new EventRing(1024).capacity());
    }

    @Test
    void aFullRingRefusesAtOnceAndFreesSlotsInOrder() {
        EventRing r = new EventRing(4);
        for (int k = 0; k < 4; k++) {
            long pos = r.tryClaim();
            assertEquals(k, pos);
            r.longs[r.slot(pos) * EventRing.LONGS] = 100 + k;
            r.publish(pos);
        }
        assertEquals(-1, r.tryClaim());
        long head = r.peek();
        assertEquals(0, head);
        assertEquals(100, r.longs[r.slot(head) * EventRing.LONGS]);
        r.release(head);
        assertEquals(4, r.tryClaim());
    }

    @Test
    void aClaimedButUnpublishedSlotIsNotConsumed() {
        EventRing r = new EventRing(4);
        long pos = r.tryClaim();
        assertEquals(-1, r.peek());
        r.publish(pos);
        assertEquals(pos, r.peek());
    }

    /** Every producer's events arrive exactly once, whatever the interleaving. */
    @Test
    void concurrentProducersLoseAndDuplicateNothing() throws Exception {
        EventRing r = new EventRing(1024);
        int producers = 4;
        int perProducer = 200_000;
        AtomicLong dropped = new AtomicLong();
        CountDownLatch start = new CountDownLatch(1);
        Thread[] ts = new Thread[producers];
        for (int p = 0; p < producers; p++) {
            final int id = p;
            ts[p] = new Thread(() -> {
                try {
                    start.await();
                } catch (InterruptedException e) {
                    return;
                }
                for (int k = 0; k < perProducer; k++) {
                    long pos = r.tryClaim();
                    if (pos < 0) {
                        dropped.incrementAndGet();
                        continue;
                    }
                    r.longs[r.slot(pos) * EventRing.LONGS] = ((long) id << 32) | k;
                    r.publish(pos);
                }
            });
            ts[p].start();
        }
        start.countDown();
        long received = 0;
        long sum = 0;
        int[] lastSeen = new int[producers];
        java.util.Arrays.fill(lastSeen, -1);
        boolean running = true;
        while (running || r.peek() >= 0) {
            running = false;
            for (Thread t : ts) {
                running |= t.isAlive();
            }
            long pos;
            while ((pos = r.peek()) >= 0) {
                long v = r.longs[r.slot(pos) * EventRing.LONGS];
                r.release(pos);
                int id = (int) (v >>> 32);
                int k = (int) v;
                assertTrue(k > lastSeen[id], "per-producer order kept, no duplicate");
                lastSeen[id] = k;
                received++;
                sum += k;
            }
        }
        assertEquals((long) producers * perProducer, received + dropped.get());
        assertTrue(sum >= 0);
    }
}
