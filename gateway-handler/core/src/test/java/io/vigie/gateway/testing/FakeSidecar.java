package io.vigie.gateway.testing;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.vigie.gateway.wire.BatchDecoder;
import io.vigie.wire.v1.Ack;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.GatewayMessage;
import io.vigie.wire.v1.SidecarMessage;
import io.vigie.wire.v1.TelemetryGrpc;
import io.vigie.wire.v1.Welcome;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An in-process stand-in for the sidecar's Telemetry service, for unit tests only: answers Hello
 * with a Welcome (and an optional directive table), decodes every batch with the contract's rules,
 * acks it, and records everything per stream. Runs on the caller's thread (direct executor), so a
 * test that drives the sender by hand sees every effect at once.
 */
public final class FakeSidecar implements AutoCloseable {
    /** What one stream carried. */
    public static final class Stream {
        public final List<GatewayMessage> received = new CopyOnWriteArrayList<>();
        public final List<BatchDecoder.Event> events = new CopyOnWriteArrayList<>();
        public final BatchDecoder decoder = new BatchDecoder();
        public final AtomicInteger completions = new AtomicInteger();
        public final AtomicInteger errors = new AtomicInteger();
        public volatile String refusal;
        volatile StreamObserver<SidecarMessage> out;
        volatile boolean closed;

        /** The sidecar ends this stream with an error (the gateway must reconnect). */
        public void fail() {
            if (!closed) {
                closed = true;
                out.onError(Status.UNAVAILABLE.withDescription("fake sidecar failure").asRuntimeException());
            }
        }

        public void push(SidecarMessage m) {
            out.onNext(m);
        }
    }

    public final List<Stream> streams = new CopyOnWriteArrayList<>();
    public volatile int maxBatchEvents = 65_536;
    public volatile int maxDictionaryEntries = 1_000_000;
    public volatile boolean ack = true;
    /** Keeps a stream's response side open after the gateway half-closed it (acks may follow). */
    public volatile boolean holdCompletion;
    /** Stalled: accepts streams and reads them but never answers a Hello (no Welcome, no acks). */
    public volatile boolean silent;
    public volatile DirectiveUpdate initialDirectives;
    private final String name;
    private final Server server;

    public FakeSidecar(String name) throws IOException {
        this.name = name;
        this.server = InProcessServerBuilder.forName(name).directExecutor().addService(new Service()).build().start();
    }

    private FakeSidecar(int port) throws IOException {
        this.name = null;
        this.server = io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder.forAddress(
                new java.net.InetSocketAddress("127.0.0.1", port)).addService(new Service()).build().start();
    }

    /** The same fake over real TCP on 127.0.0.1 (an ephemeral port: see {@link #port()}). */
    public static FakeSidecar overTcp() throws IOException {
        return new FakeSidecar(0);
    }

    public int port() {
        return server.getPort();
    }

    /** An in-process channel to this fake (in-process fakes only). */
    public ManagedChannel channel() {
        return InProcessChannelBuilder.forName(name).directExecutor().build();
    }

    public Stream last() {
        return streams.get(streams.size() - 1);
    }

    public long eventsApplied() {
        long n = 0;
        for (Stream s : streams) {
            n += s.events.size();
        }
        return n;
    }

    @Override
    public void close() {
        server.shutdownNow();
    }

    private final class Service extends TelemetryGrpc.TelemetryImplBase {
        @Override
        public StreamObserver<GatewayMessage> stream(StreamObserver<SidecarMessage> out) {
            Stream s = new Stream();
            s.out = out;
            streams.add(s);
            return new StreamObserver<GatewayMessage>() {
                @Override
                public void onNext(GatewayMessage m) {
                    s.received.add(m);
                    if (s.closed) {
                        return;
                    }
                    if (m.hasHello()) {
                        if (silent) {
                            return;
                        }
                        out.onNext(SidecarMessage.newBuilder().setWelcome(Welcome.newBuilder()
                                .setSidecarId("fake").setProtocolVersion(1).setMaxBatchEvents(maxBatchEvents)
                                .setMaxDictionaryEntries(maxDictionaryEntries)).build());
                        DirectiveUpdate d = initialDirectives;
                        out.onNext(SidecarMessage.newBuilder().setDirectives(
                                d != null ? d : DirectiveUpdate.newBuilder().setFull(true).build()).build());
                    } else if (m.hasBatch()) {
                        try {
                            s.events.addAll(s.decoder.decode(m.getBatch()));
                        } catch (BatchDecoder.RefusedException e) {
                            s.refusal = e.getMessage();
                            s.closed = true;
                            out.onError(Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException());
                            return;
                        }
                        if (ack) {
                            out.onNext(SidecarMessage.newBuilder().setAck(Ack.newBuilder()
                                    .setSequence(m.getBatch().getSequence()).setEventsApplied(s.events.size())).build());
                        }
                    }
                }

                @Override
                public void onError(Throwable t) {
                    s.errors.incrementAndGet();
                    s.closed = true;
                }

                @Override
                public void onCompleted() {
                    s.completions.incrementAndGet();
                    if (!s.closed && !holdCompletion) {
                        s.closed = true;
                        out.onCompleted();
                    }
                }
            };
        }
    }
}
