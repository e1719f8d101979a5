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
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
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
 * <p>The events go to every sidecar target of the gateway (one or more: the vigie instances of
 * its fleet). The request path writes one queue; with several targets a fan-out thread
 * ({@code vigie-fanout}) copies each event into every target's own bounded queue ({@link FanOut})
 * (with one, its sender reads that queue itself: no copy, no extra thread), and each target has its own
 * sender thread ({@code vigie-sender}, {@code vigie-sender-2}, ...), stream, dictionary, backoff
 * and counters: a slow or dead sidecar costs drops counted for it alone. The directive tables of
 * all targets are merged into one ({@link DirectiveTable#apply(int, io.vigie.wire.v1.DirectiveUpdate)}),
 * so a directive sent by several is enforced once. Build with {@link #builder()}; every setting
 * has a safe default.
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
    private final Target[] targets;
    private final Counters[] targetCounters;
    /** {@code null} with one sidecar: its sender then reads the agent's queue itself. */
    private final FanOut fanOut;
    private final Thread fanOutThread;
    private final boolean threaded;
    private final long idleParkNanos;
    private final long shutdownFlushMs;
    private final Thread shutdownHook;
    private final ThreadLocal<RequestRecord> records = ThreadLocal.withInitial(RequestRecord::new);
    private volatile boolean closed;
    /** Set once the fan-out has moved its last events: the target threads then flush and stop. */
    private volatile boolean targetsStopping;
    /** When the targets' last flush must end (System.nanoTime), set before {@link #targetsStopping}. */
    private volatile long stopDeadlineNanos;
    private final AgentJmx jmx;
    private final ClientIp clientIp;

    /** One sidecar target: its queue, counters, gRPC channel, sender and thread. */
    private static final class Target {
        final String name;
        final EventRing queue;
        final Counters counters;
        final ManagedChannel channel;
        final StreamSender sender;
        Thread thread;

        Target(String name, EventRing queue, Counters counters, ManagedChannel channel, StreamSender sender) {
            this.name = name;
            this.queue = queue;
            this.counters = counters;
            this.channel = channel;
            this.sender = sender;
        }
    }

    private VigieAgent(Builder b) {
        this.clock = b.clock;
        this.ring = new EventRing(b.queueCapacity);
        this.directives = new DirectiveTable(b.clock, b.channelName, counters.directivesRejected);
        this.enforcement = b.enforcement;
        this.clientIp = b.clientIp != null ? b.clientIp : ClientIp.hashed(null);
        Hello hello = Hello.newBuilder()
                .setGatewayId(b.gatewayId)
                .setChannel(b.channelName)
                .setTenant(b.tenant)
                .setRegion(b.region)
                .setHandlerVersion(VERSION)
                .setProtocolVersion(StreamSender.PROTOCOL_VERSION)
                // names this run's numbering of events, the same on every target's stream
                .setRunId(UUID.randomUUID().toString())
                .build();
        SenderConfig config = SenderConfig.builder(hello, clientIp)
                .batchMaxEvents(b.batchMaxEvents)
                .flushIntervalMs(b.flushIntervalMs)
                .reportIntervalMs(b.reportIntervalMs)
                .backoffMs(b.backoffInitialMs, b.backoffMaxMs)
                .disconnectedHoldMs(b.disconnectedHoldMs)
                .build();
        int n = b.targetNames.size();
        this.targets = new Target[n];
        this.targetCounters = new Counters[n];
        EventRing[] queues = new EventRing[n];
        for (int k = 0; k < n; k++) {
            Supplier<ManagedChannel> supplier = b.targetChannels.get(k);
            ManagedChannel ch = supplier != null ? supplier.get() : defaultChannel(b.targetNames.get(k), b.tls);
            Counters own = new Counters();
            // one sidecar: no copy, no fan-out thread (the request path's neighbours as before)
            EventRing queue = n == 1 ? ring : new EventRing(b.queueCapacity, true);
            StreamSender sender = new StreamSender(queue, own, counters, ring, directives, k, clock, ch, config);
            targets[k] = new Target(b.targetNames.get(k), queue, own, ch, sender);
            targetCounters[k] = own;
            queues[k] = queue;
        }
        this.fanOut = n == 1 ? null : new FanOut(ring, queues, targetCounters);
        this.idleParkNanos = Math.min(1_000_000L, TimeUnit.MILLISECONDS.toNanos(b.flushIntervalMs) / 2 + 1);
        if (b.jmx) {
            jmx = new AgentJmx(this);
            jmx.register(b.gatewayId);
        } else {
            jmx = null;
        }
        this.shutdownFlushMs = b.shutdownFlushMs;
        this.shutdownHook = b.closeOnJvmExit ? registerShutdownHook() : null;
        this.threaded = b.startThread;
        if (b.startThread) {
            for (int k = 0; k < n; k++) {
                Target t = targets[k];
                t.thread = new Thread(() -> runTarget(t), k == 0 ? "vigie-sender" : "vigie-sender-" + (k + 1));
                t.thread.setDaemon(true);
                t.thread.start();
            }
            if (fanOut != null) {
                fanOutThread = new Thread(this::runFanOut, "vigie-fanout");
                fanOutThread.setDaemon(true);
                fanOutThread.start();
            } else {
                fanOutThread = null;
            }
        } else {
            fanOutThread = null;
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with the settings read by {@link AgentSettings}. */
    public static Builder builder(AgentSettings s) {
        return new Builder()
                .sidecarAddresses(s.sidecarAddresses)
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
                .clientIp(s.clientIp)
                .closeOnJvmExit(true)
                .tls(s.tlsCaFile, s.tlsCertFile, s.tlsKeyFile, s.tlsAuthority);
    }

    /** How the adapters capture the client's address ({@code vigie.capture.client-ip}). */
    public ClientIp clientIp() {
        return clientIp;
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
        i[io + EventRing.I_TARGET_STATUS] = r.targetStatus;
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

    /**
     * CONNECTED, CONNECTING, DISCONNECTED or CLOSED: with several sidecars, the least advanced
     * of their states (CONNECTED only when every stream is up); see {@link #targetState(int)}.
     */
    public String streamState() {
        StreamSender.State least = StreamSender.State.CLOSED;
        for (Target t : targets) {
            StreamSender.State st = t.sender.state();
            if (st.ordinal() < least.ordinal()) {
                least = st;
            }
        }
        return least.name();
    }

    /** Events waiting: the agent's queue and every target's. */
    public int queueDepth() {
        int n = ring.size();
        for (Target t : targets) {
            if (t.queue != ring) {
                n += t.queue.size();
            }
        }
        return n;
    }

    /** Capacity of the agent's queue (each target's queue has as many slots). */
    public int queueCapacity() {
        return ring.capacity();
    }

    public int activeDirectives() {
        return directives.activeCount();
    }

    /** Number of sidecar targets (one per address of {@code vigie.sidecar.addresses}). */
    public int targetCount() {
        return targets.length;
    }

    /** The address (or test name) of target {@code k}. */
    public String targetName(int k) {
        return targets[k].name;
    }

    /** Stream state of target {@code k}: CONNECTED, CONNECTING, DISCONNECTED or CLOSED. */
    public String targetState(int k) {
        return targets[k].sender.state().name();
    }

    /** Target {@code k}'s account, as its {@code GatewayReport} says it ({@link Counters#forTarget}). */
    public Counters.Snapshot targetCounters(int k) {
        Target t = targets[k];
        return Counters.forTarget(counters, t.counters, t.queue == ring ? ring.size() : ring.size() + t.queue.size());
    }

    public DirectiveTable directives() {
        return directives;
    }

    /** The agent's figures: shared ones, and per-target ones summed over targets ({@link Counters#total}). */
    public Counters.Snapshot counters() {
        return Counters.total(counters, targetCounters, queueDepth());
    }

    /**
     * For adapters: counts a request answered that belongs to no API at all (not recorded), in
     * total and under the first segment of its path ({@link UnmatchedPrefixes}; null = no path).
     * Never throws.
     */
    public void countUnmatched(String path) {
        counters.unmatched.increment();
        try {
            counters.unmatchedPrefixes.count(path);
        } catch (RuntimeException e) {
            counters.adapterErrors.increment();
        }
    }

    /** Requests that matched no API, by path prefix, as the next {@code GatewayReport} sends them. */
    public java.util.List<io.vigie.wire.v1.UnmatchedPrefix> unmatchedPrefixes() {
        return counters.unmatchedPrefixes.report();
    }

    /** For adapters: counts an error they caught on the request path. */
    public void countAdapterError() {
        counters.adapterError();
    }

    /**
     * Runs one round by hand (only when built with {@code startThread(false)}): the fan-out, then
     * each target's sender.
     */
    public boolean step() {
        if (threaded) {
            throw new IllegalStateException("the sender runs on its own thread");
        }
        boolean worked = fanOut != null && fanOut.step();
        for (Target t : targets) {
            worked |= t.sender.step();
        }
        return worked;
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
        if (threaded) {
            // the fan-out moves its last events, then the targets flush in parallel
            if (fanOutThread != null) {
                LockSupport.unpark(fanOutThread);
                join(fanOutThread, deadline);
            }
            stopDeadlineNanos = deadline;
            targetsStopping = true;
            for (Target t : targets) {
                LockSupport.unpark(t.thread);
            }
            for (Target t : targets) {
                join(t.thread, deadline + 100_000_000L); // each thread bounds its own flush
            }
        } else {
            if (fanOut != null) {
                fanOut.drainAll();
            }
            targetsStopping = true;
            for (Target t : targets) {
                t.sender.shutdown(Math.max(0, deadline - System.nanoTime()));
            }
        }
        for (Target t : targets) {
            t.channel.shutdown();
        }
        for (Target t : targets) {
            try {
                long left = Math.max(100_000_000L, deadline - System.nanoTime());
                if (!t.channel.awaitTermination(left, TimeUnit.NANOSECONDS)) {
                    t.channel.shutdownNow();
                }
            } catch (InterruptedException e) {
                t.channel.shutdownNow();
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

    private static void join(Thread t, long deadlineNanos) {
        try {
            long left = deadlineNanos - System.nanoTime();
            t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left) + 100));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void runFanOut() {
        try {
            while (!closed) {
                boolean worked;
                try {
                    worked = fanOut.step();
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "vigie: fan-out round failed", e);
                    worked = false;
                }
                if (!worked) {
                    LockSupport.parkNanos(idleParkNanos);
                }
            }
        } finally {
            fanOut.drainAll(); // what was offered before close goes to every target
        }
    }

    private void runTarget(Target t) {
        try {
            while (!targetsStopping) {
                boolean worked;
                try {
                    worked = t.sender.step();
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "vigie: sender round failed (" + t.name + ")", e);
                    worked = false;
                }
                if (!worked) {
                    LockSupport.parkNanos(idleParkNanos);
                }
            }
        } finally {
            t.sender.shutdown(targetsStopping ? Math.max(0, stopDeadlineNanos - System.nanoTime())
                    : TimeUnit.MILLISECONDS.toNanos(shutdownFlushMs));
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
        /** Target addresses (or test names), and for each the channel supplier (null = a channel to it). */
        private final List<String> targetNames = new ArrayList<>(List.of("127.0.0.1:7355"));
        private final List<Supplier<ManagedChannel>> targetChannels = new ArrayList<>(Collections.singletonList(null));
        private String gatewayId = "gateway";
        private String channelName = "";
        private String tenant = "carbon.super";
        private ClientIp clientIp;
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

        /** One sidecar, host:port (replaces the targets set so far). */
        public Builder sidecarAddress(String v) {
            return sidecarAddresses(List.of(v));
        }

        /**
         * The sidecars (the vigie instances of the fleet), host:port each, all receiving every
         * event; replaces the targets set so far. A repeated address is refused (it would count
         * every event twice).
         */
        public Builder sidecarAddresses(List<String> addresses) {
            targetNames.clear();
            targetChannels.clear();
            for (String a : addresses) {
                target(a, null);
            }
            return this;
        }

        /**
         * Uses this gRPC channel instead of one to a sidecar address (tests, custom TLS): one
         * target, replacing those set so far. Not to be confused with {@link #channel(String)},
         * the gateway channel of the fleet.
         */
        public Builder grpcChannel(Supplier<ManagedChannel> v) {
            targetNames.clear();
            targetChannels.clear();
            return target("grpc-channel", v);
        }

        /**
         * Adds a target named {@code name} (an address, or any name for tests) reached through
         * {@code channel} ({@code null}: a channel to {@code name} as host:port).
         */
        public Builder target(String name, Supplier<ManagedChannel> channel) {
            if (targetNames.contains(name)) {
                throw new IllegalArgumentException("sidecar target " + name + " given twice");
            }
            targetNames.add(name);
            targetChannels.add(channel);
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

        /** How the adapters capture the client's address (default: hashed with a random key). */
        public Builder clientIp(ClientIp v) {
            clientIp = v;
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
            if (targetNames.isEmpty()) {
                throw new IllegalArgumentException("at least one sidecar target is needed");
            }
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
