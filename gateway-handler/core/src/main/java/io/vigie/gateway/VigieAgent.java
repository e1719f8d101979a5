package io.vigie.gateway;

import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.vigie.gateway.directive.DirectiveTable;
import io.vigie.gateway.directive.Rule;
import io.vigie.gateway.queue.EventRing;
import io.vigie.wire.v1.Hello;
import java.io.File;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The gateway-agnostic handler core: what a gateway adapter calls on its request threads.
 *
 * <ul>
 *   <li>{@link #record()} then {@link #offer}: capture one request; never blocks, never throws,
 *       allocates nothing; a full queue is a counted drop;</li>
 *   <li>{@link #check}: the directive table's verdict for a request, O(1) and allocation-free;</li>
 *   <li>{@link #counters()}: the figures, also in JMX ({@link AgentJmx}) and in the stream's
 *       {@code GatewayReport}.</li>
 * </ul>
 *
 * <p>One background thread ({@code vigie-sender}) ships the events to the sidecar. Build with
 * {@link #builder()}; every setting has a safe default.
 */
public final class VigieAgent implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(VigieAgent.class.getName());
    /** Version of this handler (the pom's), sent in Hello. */
    public static final String VERSION = HandlerVersion.VALUE;

    private final EventRing ring;
    private final Counters counters = new Counters();
    private final DirectiveTable directives;
    private final Clock clock;
    private final boolean enforcement;
    private final StreamSender sender;
    private final ManagedChannel channel;
    private final boolean ownsChannel;
    private final Thread thread;
    private final long idleParkNanos;
    private final long shutdownFlushMs;
    private final Thread shutdownHook;
    private final ThreadLocal<RequestRecord> records = ThreadLocal.withInitial(RequestRecord::new);
    private volatile boolean closed;
    private final AgentJmx jmx;

    private VigieAgent(Builder b) {
        this.clock = b.clock;
        this.ring = new EventRing(b.queueCapacity);
        this.directives = new DirectiveTable(b.clock, b.channelName, counters.directivesRejected);
        this.enforcement = b.enforcement;
        if (b.grpcChannelSupplier != null) {
            this.channel = b.grpcChannelSupplier.get();
            this.ownsChannel = true;
        } else {
            this.channel = defaultChannel(b.sidecarAddress, b.tls);
            this.ownsChannel = true;
        }
        Hello hello = Hello.newBuilder()
                .setGatewayId(b.gatewayId)
                .setChannel(b.channelName)
                .setTenant(b.tenant)
                .setRegion(b.region)
                .setHandlerVersion(VERSION)
                .setProtocolVersion(StreamSender.PROTOCOL_VERSION)
                .build();
        SenderConfig config = SenderConfig.builder(hello)
                .batchMaxEvents(b.batchMaxEvents)
                .flushIntervalMs(b.flushIntervalMs)
                .reportIntervalMs(b.reportIntervalMs)
                .backoffMs(b.backoffInitialMs, b.backoffMaxMs)
                .disconnectedHoldMs(b.disconnectedHoldMs)
                .build();
        this.sender = new StreamSender(ring, counters, directives, clock, channel, config);
        this.idleParkNanos = Math.min(1_000_000L, TimeUnit.MILLISECONDS.toNanos(b.flushIntervalMs) / 2 + 1);
        if (b.jmx) {
            jmx = new AgentJmx(counters, ring, sender, directives);
            jmx.register(b.gatewayId);
        } else {
            jmx = null;
        }
        this.shutdownFlushMs = b.shutdownFlushMs;
        this.shutdownHook = b.closeOnJvmExit ? registerShutdownHook() : null;
        if (b.startThread) {
            thread = new Thread(this::run, "vigie-sender");
            thread.setDaemon(true);
            thread.start();
        } else {
            thread = null;
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with the settings read by {@link AgentSettings}. */
    public static Builder builder(AgentSettings s) {
        return new Builder()
                .sidecarAddress(s.sidecarAddress)
                .gatewayId(s.gatewayId)
                .channel(s.channel)
                .tenant(s.tenant)
                .region(s.region)
                .queueCapacity(s.queueCapacity)
                .batchMaxEvents(s.batchMaxEvents)
                .flushIntervalMs(s.flushIntervalMs)
                .reportIntervalMs(s.reportIntervalMs)
                .backoffMs(s.backoffInitialMs, s.backoffMaxMs)
                .disconnectedHoldMs(s.disconnectedHoldMs)
                .enforcement(s.enforcement)
                .jmx(s.jmx)
                .shutdownFlushMs(s.shutdownFlushMs)
                .closeOnJvmExit(true)
                .tls(s.tlsCaFile, s.tlsCertFile, s.tlsKeyFile, s.tlsAuthority);
    }

    /** This thread's reusable record, cleared. Fill it and {@link #offer} it. */
    public RequestRecord record() {
        return records.get().reset();
    }

    /**
     * Queues a copy of {@code r} for the sidecar. Never blocks, never throws, allocates nothing.
     * Returns {@code false} when the event was dropped (queue full or agent closed; counted).
     */
    public boolean offer(RequestRecord r) {
        counters.offered.increment();
        if (closed || r == null) {
            counters.droppedOther.increment();
            return false;
        }
        long pos = ring.tryClaim();
        if (pos < 0) {
            counters.droppedQueueFull.increment();
            return false;
        }
        int slot = ring.slot(pos);
        long[] l = ring.longs;
        int lo = slot * EventRing.LONGS;
        l[lo + EventRing.L_EVENT_TIME_US] = r.eventTimeUs > 0 ? r.eventTimeUs : clock.wallMicros();
        l[lo + EventRing.L_LATENCY_US] = r.latencyUs;
        l[lo + EventRing.L_BACKEND_LATENCY_US] = r.backendLatencyUs;
        l[lo + EventRing.L_REQUEST_BYTES] = r.requestBytes;
        l[lo + EventRing.L_RESPONSE_BYTES] = r.responseBytes;
        l[lo + EventRing.L_URI_HASH] = r.uriHash;
        int[] i = ring.ints;
        int io = slot * EventRing.INTS;
        i[io + EventRing.I_HTTP_METHOD] = r.httpMethod;
        i[io + EventRing.I_HTTP_STATUS] = r.httpStatus;
        i[io + EventRing.I_ERROR_CODE] = r.errorCode;
        i[io + EventRing.I_KEY_TYPE] = r.keyType;
        i[io + EventRing.I_FLAGS] = r.flags;
        System.arraycopy(r.strings, 0, ring.strings, slot * EventRing.STRINGS, EventRing.STRINGS);
        ring.publish(pos);
        return true;
    }

    /**
     * The directive that refuses this request, or {@code null} to let it through. Shadow
     * directives only count. With enforcement switched off on this gateway
     * ({@code vigie.enforcement=false}) nothing is refused, though the table still counts what
     * its ENFORCE directives matched. O(1), allocation-free, never throws.
     */
    public Rule check(String applicationId, String apiName, String apiVersion) {
        try {
            Rule r = directives.check(applicationId, apiName, apiVersion);
            return enforcement ? r : null;
        } catch (RuntimeException e) {
            counters.adapterErrors.increment();
            return null;
        }
    }

    /** CONNECTED, CONNECTING, DISCONNECTED or CLOSED. */
    public String streamState() {
        return sender.state().name();
    }

    public int queueDepth() {
        return ring.size();
    }

    public int queueCapacity() {
        return ring.capacity();
    }

    public int activeDirectives() {
        return directives.activeCount();
    }

    public DirectiveTable directives() {
        return directives;
    }

    public Counters.Snapshot counters() {
        return counters.snapshot(ring.size());
    }

    /** For adapters: counts an error they caught on the request path. */
    public void countAdapterError() {
        counters.adapterError();
    }

    /** Runs one round of the sender by hand (only when built with {@code startThread(false)}). */
    public boolean step() {
        if (thread != null) {
            throw new IllegalStateException("the sender runs on its own thread");
        }
        return sender.step();
    }

    /**
     * Sends what is queued and the last batch, completes the stream, stops the sender and the
     * channel; takes at most about {@code vigie.shutdown.flush-ms} (what is left then is a
     * counted drop). Idempotent.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(shutdownFlushMs);
        if (thread != null) {
            LockSupport.unpark(thread);
            try {
                thread.join(Math.max(1, shutdownFlushMs + 100)); // the thread bounds its own flush
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        } else {
            sender.shutdown(TimeUnit.MILLISECONDS.toNanos(shutdownFlushMs));
        }
        if (ownsChannel) {
            channel.shutdown();
            try {
                long left = Math.max(100_000_000L, deadline - System.nanoTime());
                if (!channel.awaitTermination(left, TimeUnit.NANOSECONDS)) {
                    channel.shutdownNow();
                }
            } catch (InterruptedException e) {
                channel.shutdownNow();
                Thread.currentThread().interrupt();
            }
        }
        if (jmx != null) {
            jmx.unregister();
        }
        removeShutdownHook();
    }

    /**
     * One hook per agent, registered once at build: at a normal JVM exit it runs {@link #close()}
     * (bounded by {@code vigie.shutdown.flush-ms}) and never throws.
     */
    private Thread registerShutdownHook() {
        Thread hook = new Thread(() -> {
            try {
                close();
            } catch (Throwable t) {
                LOG.log(Level.WARNING, "vigie: flushing at JVM exit failed", t);
            }
        }, "vigie-shutdown-flush");
        try {
            Runtime.getRuntime().addShutdownHook(hook);
            return hook;
        } catch (IllegalStateException | SecurityException e) {
            LOG.log(Level.WARNING, "vigie: no JVM shutdown hook; the last batch may be lost at exit", e);
            return null;
        }
    }

    private void removeShutdownHook() {
        if (shutdownHook == null || Thread.currentThread() == shutdownHook) {
            return;
        }
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException | SecurityException e) {
            // the JVM is already shutting down: the hook runs (and finds the agent closed)
        }
    }

    private void run() {
        try {
            while (!closed) {
                boolean worked;
                try {
                    worked = sender.step();
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "vigie: sender round failed", e);
                    worked = false;
                }
                if (!worked) {
                    LockSupport.parkNanos(idleParkNanos);
                }
            }
        } finally {
            sender.shutdown(TimeUnit.MILLISECONDS.toNanos(shutdownFlushMs));
        }
    }

    private static ManagedChannel defaultChannel(String address, Tls tls) {
        int colon = address.lastIndexOf(':');
        String host = address.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = Integer.parseInt(address.substring(colon + 1));
        NettyChannelBuilder b;
        if (tls == null) {
            b = NettyChannelBuilder.forAddress(host, port).usePlaintext();
        } else {
            b = NettyChannelBuilder.forAddress(host, port, tls.credentials());
            if (!tls.authority.isEmpty()) {
                b.overrideAuthority(tls.authority);
            }
        }
        return b.keepAliveTime(30, TimeUnit.SECONDS)
                .keepAliveWithoutCalls(true)
                .maxInboundMessageSize(16 * 1024 * 1024)
                .build();
    }

    /** TLS to the sidecar: the CA to trust, and optionally this gateway's certificate (mTLS). */
    static final class Tls {
        final String caFile;
        final String certFile;
        final String keyFile;
        final String authority;

        Tls(String caFile, String certFile, String keyFile, String authority) {
            this.caFile = caFile;
            this.certFile = certFile;
            this.keyFile = keyFile;
            this.authority = authority == null ? "" : authority;
        }

        ChannelCredentials credentials() {
            try {
                TlsChannelCredentials.Builder t = TlsChannelCredentials.newBuilder().trustManager(new File(caFile));
                if (!certFile.isEmpty() && !keyFile.isEmpty()) {
                    t.keyManager(new File(certFile), new File(keyFile));
                }
                return t.build();
            } catch (IOException e) {
                throw new IllegalArgumentException("vigie: cannot read the TLS files (" + e.getMessage() + ")", e);
            }
        }
    }

    /** Settings of an agent; each has a safe default. */
    public static final class Builder {
        private String sidecarAddress = "127.0.0.1:7355";
        private Supplier<ManagedChannel> grpcChannelSupplier;
        private String gatewayId = "gateway";
        private String channelName = "";
        private String tenant = "carbon.super";
        private String region = "";
        private int queueCapacity = 65_536;
        private int batchMaxEvents = 4_096;
        private long flushIntervalMs = 5;
        private long reportIntervalMs = 5_000;
        private long backoffInitialMs = 100;
        private long backoffMaxMs = 500;
        private long disconnectedHoldMs = 10_000;
        private boolean enforcement = true;
        private boolean jmx = false;
        private boolean startThread = true;
        private Clock clock = Clock.SYSTEM;
        private Tls tls;
        private long shutdownFlushMs = 2_000;
        private boolean closeOnJvmExit;

        private Builder() {}

        /**
         * TLS to the sidecar (when it listens beyond loopback): {@code caFile} is the PEM CA that
         * signed the sidecar's certificate (empty = plaintext); {@code certFile}/{@code keyFile}
         * (PEM, PKCS#8 key) are this gateway's certificate for mTLS (empty = none);
         * {@code authority} overrides the host name checked in the sidecar's certificate.
         */
        public Builder tls(String caFile, String certFile, String keyFile, String authority) {
            tls = caFile == null || caFile.isEmpty() ? null
                    : new Tls(caFile, certFile == null ? "" : certFile, keyFile == null ? "" : keyFile, authority);
            return this;
        }

        /** Sidecar address, host:port (plaintext gRPC: the sidecar runs beside the gateway). */
        public Builder sidecarAddress(String v) {
            sidecarAddress = v;
            return this;
        }

        /**
         * Uses this gRPC channel instead of one to {@link #sidecarAddress} (tests, custom TLS).
         * Not to be confused with {@link #channel(String)}, the gateway channel of the fleet.
         */
        public Builder grpcChannel(Supplier<ManagedChannel> v) {
            grpcChannelSupplier = v;
            return this;
        }

        public Builder gatewayId(String v) {
            gatewayId = v;
            return this;
        }

        /**
         * The gateway channel (main, sale, ...): named {@code channel} in the wire contract and in
         * directives' scopes. Not the gRPC channel ({@link #grpcChannel}).
         */
        public Builder channel(String v) {
            channelName = v == null ? "" : v;
            return this;
        }

        public Builder tenant(String v) {
            tenant = v;
            return this;
        }

        public Builder region(String v) {
            region = v;
            return this;
        }

        public Builder queueCapacity(int v) {
            queueCapacity = v;
            return this;
        }

        public Builder batchMaxEvents(int v) {
            batchMaxEvents = v;
            return this;
        }

        public Builder flushIntervalMs(long v) {
            flushIntervalMs = v;
            return this;
        }

        public Builder reportIntervalMs(long v) {
            reportIntervalMs = v;
            return this;
        }

        public Builder backoffMs(long initial, long max) {
            backoffInitialMs = initial;
            backoffMaxMs = max;
            return this;
        }

        /** While disconnected, events older than this are dropped (0 = drop at once). */
        public Builder disconnectedHoldMs(long v) {
            disconnectedHoldMs = v;
            return this;
        }

        /** false: ENFORCE directives refuse nothing on this gateway (they still count). */
        public Builder enforcement(boolean v) {
            enforcement = v;
            return this;
        }

        /** Registers the JMX MBean (off by default in the builder; the WSO2 adapter turns it on). */
        public Builder jmx(boolean v) {
            jmx = v;
            return this;
        }

        /** false: no sender thread; the caller drives {@link VigieAgent#step()} (tests). */
        public Builder startThread(boolean v) {
            startThread = v;
            return this;
        }

        /** Bound of {@link VigieAgent#close()} and of the shutdown hook's flush (default 2 s). */
        public Builder shutdownFlushMs(long v) {
            shutdownFlushMs = v;
            return this;
        }

        /**
         * Registers a JVM shutdown hook that closes the agent (flushing the queue and the last
         * batch) at a normal exit; APIM 4.x calls no handler at shutdown. Off by default in the
         * builder; {@link VigieAgent#builder(AgentSettings)} (the adapters) turns it on.
         */
        public Builder closeOnJvmExit(boolean v) {
            closeOnJvmExit = v;
            return this;
        }

        public Builder clock(Clock v) {
            clock = v;
            return this;
        }

        public VigieAgent build() {
            if (queueCapacity < 2) {
                throw new IllegalArgumentException("queueCapacity must be at least 2");
            }
            if (batchMaxEvents < 1) {
                throw new IllegalArgumentException("batchMaxEvents must be positive");
            }
            if (shutdownFlushMs < 0) {
                throw new IllegalArgumentException("shutdownFlushMs must not be negative");
            }
            if (flushIntervalMs < 1 || reportIntervalMs < 1 || backoffInitialMs < 1 || backoffMaxMs < backoffInitialMs) {
                throw new IllegalArgumentException("intervals must be positive and backoff max >= initial");
            }
            return new VigieAgent(this);
        }
    }
}
