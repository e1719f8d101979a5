package io.vigie.bench;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCalls;
import io.vigie.gateway.RequestRecord;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.gateway.queue.EventRing;
import io.vigie.gateway.wire.BatchEncoder;
import io.vigie.wire.v1.Ack;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.GatewayMessage;
import io.grpc.CallOptions;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The request path, per request: vigie's (capture + offer + directive lookup) against the naive
 * design (capture + a synchronous unary gRPC call per request to a local server), in one run.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class RequestPathBenchmark {
    /** Requests to capture, cycled through (different applications and URIs). */
    @State(Scope.Thread)
    public static class Requests {
        GatewayContext[] contexts;
        int next;

        @Setup(Level.Trial)
        public void setUp() {
            contexts = new GatewayContext[64];
            for (int k = 0; k < contexts.length; k++) {
                contexts[k] = new GatewayContext(k);
            }
        }

        GatewayContext next() {
            next = (next + 1) & (contexts.length - 1);
            return contexts[next];
        }
    }

    /** vigie's agent streaming to a local sink, with 2,001 directives in its table. */
    @State(Scope.Benchmark)
    public static class Vigie {
        SinkServer sink;
        VigieAgent agent;

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            sink = new SinkServer();
            agent = VigieAgent.builder().sidecarAddress("127.0.0.1:" + sink.port()).gatewayId("bench")
                    .queueCapacity(1 << 16).build();
            // none refuses these requests; one shadow limit matches them
            DirectiveUpdate.Builder u = DirectiveUpdate.newBuilder().setFull(true).setVersion(1);
            long expiry = System.currentTimeMillis() * 1000 + 3_600_000_000L;
            for (int k = 0; k < 1_000; k++) {
                u.addUpserts(Directive.newBuilder().setId("block-" + k).setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApplicationId("other-app-" + k)
                        .setExpiresAtUs(expiry));
                u.addUpserts(Directive.newBuilder().setId("limit-" + k).setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApiName("other-api-" + k)
                        .setApiVersion("1.0.0").setLimitRequests(100).setLimitPeriodSeconds(1)
                        .setExpiresAtUs(expiry));
            }
            u.addUpserts(Directive.newBuilder().setId("shadow-pizza").setMode(DirectiveMode.DIRECTIVE_MODE_SHADOW)
                    .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApiName("PizzaShackAPI")
                    .setLimitRequests(1_000_000).setLimitPeriodSeconds(1).setExpiresAtUs(expiry));
            agent.directives().apply(u.build());
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            agent.close();
            sink.close();
        }
    }

    /** The same agent streaming to two local sinks (a fleet of two: the fan-out runs). */
    @State(Scope.Benchmark)
    public static class VigieFleet {
        SinkServer one;
        SinkServer two;
        VigieAgent agent;

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            one = new SinkServer();
            two = new SinkServer();
            agent = VigieAgent.builder()
                    .sidecarAddresses(java.util.List.of("127.0.0.1:" + one.port(), "127.0.0.1:" + two.port()))
                    .gatewayId("bench-fleet").queueCapacity(1 << 16).build();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            agent.close();
            one.close();
            two.close();
        }
    }

    /** The naive design's client: a channel to a local server with a unary method. */
    @State(Scope.Benchmark)
    public static class Naive {
        SinkServer sink;
        ManagedChannel channel;

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            sink = new SinkServer();
            channel = NettyChannelBuilder.forAddress("127.0.0.1", sink.port()).usePlaintext().build();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            channel.shutdownNow();
            sink.close();
        }
    }

    /** vigie: capture into the thread's record, offer it, consult the directive table. */
    @Benchmark
    public Rule vigie(Vigie v, Requests q) {
        GatewayContext c = q.next();
        RequestRecord r = v.agent.record();
        c.capture(r, 1_700_000_000_005_000L);
        v.agent.offer(r);
        return v.agent.check(c.app(), "PizzaShackAPI", "1.0.0");
    }

    /** vigie with two sidecars: the same request path (offer writes one queue); the fan-out is off it. */
    @Benchmark
    public Rule vigieTwoSidecars(VigieFleet v, Requests q) {
        GatewayContext c = q.next();
        RequestRecord r = v.agent.record();
        c.capture(r, 1_700_000_000_005_000L);
        v.agent.offer(r);
        return v.agent.check(c.app(), "PizzaShackAPI", "1.0.0");
    }

    /** The naive way: the same capture, then one blocking unary RPC per request. */
    @Benchmark
    public Ack naive(Naive n, Requests q) {
        GatewayContext c = q.next();
        RequestRecord r = new RequestRecord();
        c.capture(r, 1_700_000_000_005_000L);
        // one event, its strings inline (a per-request call has no dictionary to lean on)
        BatchEncoder enc = new BatchEncoder(1, GatewayContext.CLIENT_IP);
        String[] s = {r.applicationId(), r.applicationName(), r.applicationOwner(), r.apiName(), r.apiVersion(),
            r.apiContext(), r.resourceTemplate(), r.subscriptionTier(), r.tenant(), r.apiId(), r.clientIp()};
        long[] l = new long[EventRing.LONGS];
        l[EventRing.L_EVENT_TIME_US] = r.eventTimeUs();
        l[EventRing.L_LATENCY_US] = r.latencyUs();
        l[EventRing.L_BACKEND_LATENCY_US] = r.backendLatencyUs();
        l[EventRing.L_REQUEST_BYTES] = r.requestBytes();
        l[EventRing.L_RESPONSE_BYTES] = r.responseBytes();
        l[EventRing.L_URI_HASH] = r.uriHash();
        int[] i = new int[EventRing.INTS];
        i[EventRing.I_HTTP_METHOD] = r.httpMethod();
        i[EventRing.I_HTTP_STATUS] = r.httpStatus();
        i[EventRing.I_KEY_TYPE] = r.keyType();
        i[EventRing.I_FLAGS] = r.flags();
        i[EventRing.I_TARGET_STATUS] = r.targetStatus();
        enc.add(s, 0, l, 0, i, 0);
        GatewayMessage m = GatewayMessage.newBuilder().setBatch(enc.build(r.eventTimeUs())).build();
        return ClientCalls.blockingUnaryCall(n.channel, SinkServer.RECORD, CallOptions.DEFAULT, m);
    }
}
