package io.vigie.bench;

import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.vigie.wire.v1.Ack;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.GatewayMessage;
import io.vigie.wire.v1.SidecarMessage;
import io.vigie.wire.v1.TelemetryGrpc;
import io.vigie.wire.v1.Welcome;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A local gRPC server for the request-path benchmark: the Telemetry stream (Welcome, then an Ack
 * per batch, no decoding, so the benchmark measures the handler rather than a sidecar), and the
 * naive design's unary method {@code vigie.bench.Naive/Record} (one GatewayMessage per request,
 * answered with an Ack).
 */
final class SinkServer implements AutoCloseable {
    static final MethodDescriptor<GatewayMessage, Ack> RECORD = MethodDescriptor.<GatewayMessage, Ack>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(MethodDescriptor.generateFullMethodName("vigie.bench.Naive", "Record"))
            .setRequestMarshaller(ProtoUtils.marshaller(GatewayMessage.getDefaultInstance()))
            .setResponseMarshaller(ProtoUtils.marshaller(Ack.getDefaultInstance()))
            .build();

    final AtomicLong events = new AtomicLong();
    private final Server server;

    SinkServer() throws IOException {
        ServerServiceDefinition naive = ServerServiceDefinition.builder("vigie.bench.Naive")
                .addMethod(RECORD, ServerCalls.asyncUnaryCall((GatewayMessage m, StreamObserver<Ack> out) -> {
                    long n = events.addAndGet(m.getBatch().getCount());
                    out.onNext(Ack.newBuilder().setSequence(m.getBatch().getSequence()).setEventsApplied(n).build());
                    out.onCompleted();
                }))
                .build();
        server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new Telemetry()).addService(naive).build().start();
    }

    int port() {
        return server.getPort();
    }

    @Override
    public void close() {
        server.shutdownNow();
    }

    private final class Telemetry extends TelemetryGrpc.TelemetryImplBase {
        @Override
        public StreamObserver<GatewayMessage> stream(StreamObserver<SidecarMessage> out) {
            return new StreamObserver<GatewayMessage>() {
                private long applied;

                @Override
                public void onNext(GatewayMessage m) {
                    if (m.hasHello()) {
                        out.onNext(SidecarMessage.newBuilder().setWelcome(Welcome.newBuilder().setSidecarId("sink")
                                .setProtocolVersion(1).setMaxBatchEvents(65_536).setMaxDictionaryEntries(1_000_000))
                                .build());
                        out.onNext(SidecarMessage.newBuilder()
                                .setDirectives(DirectiveUpdate.newBuilder().setFull(true)).build());
                    } else if (m.hasBatch()) {
                        applied += m.getBatch().getCount();
                        events.addAndGet(m.getBatch().getCount());
                        out.onNext(SidecarMessage.newBuilder().setAck(Ack.newBuilder()
                                .setSequence(m.getBatch().getSequence()).setEventsApplied(applied)).build());
                    }
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {
                    out.onCompleted();
                }
            };
        }
    }
}
