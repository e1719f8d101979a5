package io.vigie.bench;

import io.vigie.gateway.queue.EventRing;
import io.vigie.gateway.wire.BatchEncoder;
import io.vigie.wire.v1.EventBatch;
import io.vigie.wire.v1.GatewayMessage;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/** The sender thread's own work per event: drain a slot, dictionary-encode, serialize the batch. */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Thread)
public class EncoderBenchmark {
    static final int BATCH = 4_096;
    private EventRing ring;
    private BatchEncoder encoder;

    @Setup(Level.Trial)
    public void setUp() {
        ring = new EventRing(BATCH);
        encoder = new BatchEncoder(BATCH);
        for (int k = 0; k < BATCH; k++) {
            int s = k * EventRing.STRINGS;
            ring.strings[s] = "app-" + (k % 600);
            ring.strings[s + 1] = "Application " + (k % 600);
            ring.strings[s + 2] = "owner-" + (k % 50);
            ring.strings[s + 3] = "API-" + (k % 60);
            ring.strings[s + 4] = "1.0.0";
            ring.strings[s + 5] = "/api-" + (k % 60) + "/1.0.0";
            ring.strings[s + 6] = "/resource/" + (k % 8);
            ring.strings[s + 7] = "Gold";
            ring.longs[k * EventRing.LONGS] = 1_700_000_000_000_000L + k;
            ring.ints[k * EventRing.INTS + EventRing.I_HTTP_STATUS] = 200;
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public byte[] encodeBatch() {
        for (int k = 0; k < BATCH; k++) {
            encoder.add(ring, k);
        }
        EventBatch b = encoder.build(1);
        return GatewayMessage.newBuilder().setBatch(b).build().toByteArray();
    }
}
