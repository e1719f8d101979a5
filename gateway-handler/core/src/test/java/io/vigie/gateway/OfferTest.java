package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.inprocess.InProcessChannelBuilder;
import io.vigie.gateway.testing.ManualClock;
import java.lang.management.ManagementFactory;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class OfferTest {
    private static VigieAgent agent(int capacity) {
        // no sender thread and a channel to nowhere: nothing drains the queue
        return VigieAgent.builder()
                .queueCapacity(capacity)
                .startThread(false)
                .clock(new ManualClock())
                .grpcChannel(() -> InProcessChannelBuilder.forName("nowhere-" + System.nanoTime()).build())
                .build();
    }

    /** Eight threads hammer a full queue: every offer returns, and the drops add up exactly. */
    @Test
    void offerNeverBlocksUnderContentionAndCountsEveryDrop() throws Exception {
        try (VigieAgent a = agent(1024)) {
            int threads = 8;
            int each = 50_000;
            AtomicLong accepted = new AtomicLong();
            AtomicLong slowest = new AtomicLong();
            CountDownLatch go = new CountDownLatch(1);
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                ts[t] = new Thread(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (int k = 0; k < each; k++) {
                        RequestRecord r = a.record().apiName("Orders").apiVersion("v1").applicationId("app")
                                .httpStatus(200).eventTimeUs(1);
                        long t0 = System.nanoTime();
                        boolean ok = a.offer(r);
                        long dt = System.nanoTime() - t0;
                        slowest.accumulateAndGet(dt, Math::max);
                        if (ok) {
                            accepted.incrementAndGet();
                        }
                    }
                });
                ts[t].start();
            }
            go.countDown();
            for (Thread t : ts) {
                t.join(30_000);
                assertFalse(t.isAlive(), "an offering thread is stuck");
            }
            Counters.Snapshot c = a.counters();
            assertEquals((long) threads * each, c.offered);
            assertEquals(1024, accepted.get());
            assertEquals((long) threads * each - 1024, c.droppedQueueFull);
            assertEquals(1024, c.queueDepth);
            // a blocked offer would take at least a scheduler quantum; allow GC/JIT pauses
            assertTrue(slowest.get() < 500_000_000L, "slowest offer took " + slowest.get() + " ns");
        }
    }

    @Test
    void offerAllocatesNothing() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (VigieAgent a = agent(1 << 16)) {
            for (int k = 0; k < 40_000; k++) { // warm up (JIT, thread-local record); the ring holds all
                a.offer(a.record().apiName("Orders").httpStatus(200).eventTimeUs(5));
            }
            long tid = Thread.currentThread().getId();
            long before = mx.getThreadAllocatedBytes(tid);
            for (int k = 0; k < 10_000; k++) {
                a.offer(a.record().apiName("Orders").httpStatus(200).eventTimeUs(5));
            }
            long allocated = mx.getThreadAllocatedBytes(tid) - before;
            assertTrue(allocated < 1024, "10,000 offers allocated " + allocated + " bytes");
            assertEquals(0, a.counters().droppedQueueFull);
        }
    }

    @Test
    void theCountersAreReadableOverJmx() throws Exception {
        javax.management.MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        javax.management.ObjectName name = new javax.management.ObjectName(
                "io.vigie:type=GatewayHandler,gateway=\"jmx-test\"");
        try (VigieAgent a = VigieAgent.builder().gatewayId("jmx-test").jmx(true).queueCapacity(4).startThread(false)
                .clock(new ManualClock())
                .grpcChannel(() -> InProcessChannelBuilder.forName("nowhere-" + System.nanoTime()).build()).build()) {
            for (int k = 0; k < 6; k++) {
                a.offer(a.record().apiName("Orders"));
            }
            assertEquals(6L, server.getAttribute(name, "Offered"));
            assertEquals(2L, server.getAttribute(name, "DroppedQueueFull"));
            assertEquals(4, server.getAttribute(name, "QueueDepth"));
            assertEquals("DISCONNECTED", server.getAttribute(name, "StreamState"));
        }
        assertFalse(server.isRegistered(name), "unregistered on close");
    }

    @Test
    void offerAfterCloseIsACountedDrop() {
        VigieAgent a = agent(16);
        a.close();
        assertFalse(a.offer(a.record().apiName("x")));
        assertEquals(1, a.counters().droppedOther);
    }
}
