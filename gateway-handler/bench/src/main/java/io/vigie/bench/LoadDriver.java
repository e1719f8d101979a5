package io.vigie.bench;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Counters;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.KeyTypes;
import io.vigie.gateway.RequestRecord;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

/**
 * A gateway under sustained load, for the fault and soak tests ({@code tests/ops/}): request
 * threads capture, offer and check at a fixed total rate through the real handler core
 * ({@link VigieAgent}, its queue, its sender and its gRPC stream to a real {@code vigie serve}),
 * while the test kills, freezes, slows and restarts the sidecar.
 *
 * <p>It prints one JSON line of figures every {@code --report-ms} on stdout (the handler's own
 * counters, its stream state, its directive table, and how long each request-path call took,
 * measured around the calls as a log2 histogram) and runs until its standard input says
 * {@code stop} (or closes) or {@code --seconds} pass. Then it stops offering, waits (bounded)
 * until every offered event is either acknowledged by the sidecar or counted as dropped, prints
 * a last line with {@code "final":true} and closes the agent.
 *
 * <p>Arguments ({@code --name value}): {@code --sidecar host:port}, {@code --rate} events/s
 * (15000), {@code --threads} request threads (4), {@code --seconds} upper bound (600),
 * {@code --apps} applications (600), {@code --apis} APIs (60), {@code --queue} capacity (65536),
 * {@code --report-ms} (100), {@code --probe app/api/version} (a request whose directive verdict is
 * reported), {@code --gateway-id}, {@code --channel}, {@code --hold-ms} (10000), {@code --sidecars}
 * (comma-separated: a fleet, every event to each; each target's figures in {@code "targets"}), and the handler's
 * TLS settings {@code --tls-ca}, {@code --tls-cert}, {@code --tls-key}, {@code --tls-authority}.
 */
public final class LoadDriver {
    private static final int BUCKETS = 40;

    private LoadDriver() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = parse(args);
        double rate = Double.parseDouble(a.getOrDefault("rate", "15000"));
        int threads = Integer.parseInt(a.getOrDefault("threads", "4"));
        long seconds = Long.parseLong(a.getOrDefault("seconds", "600"));
        int apps = Integer.parseInt(a.getOrDefault("apps", "600"));
        int apis = Integer.parseInt(a.getOrDefault("apis", "60"));
        long reportMs = Long.parseLong(a.getOrDefault("report-ms", "100"));
        String[] probe = a.getOrDefault("probe", "probe-app/ProbeAPI/v1").split("/", 3);

        Map<String, String> props = new HashMap<>();
        if (a.containsKey("sidecars")) {
            props.put("vigie.sidecar.addresses", a.get("sidecars"));
        } else {
            props.put("vigie.sidecar.address", a.getOrDefault("sidecar", "127.0.0.1:7355"));
        }
        props.put("vigie.gateway.id", a.getOrDefault("gateway-id", "load-driver"));
        props.put("vigie.channel", a.getOrDefault("channel", "main"));
        props.put("vigie.queue.capacity", a.getOrDefault("queue", "65536"));
        props.put("vigie.disconnected.hold-ms", a.getOrDefault("hold-ms", "10000"));
        props.put("vigie.report.interval-ms", "1000");
        props.put("vigie.jmx", "false");
        for (String k : new String[] {"tls-ca", "tls-cert", "tls-key", "tls-authority"}) {
            if (a.containsKey(k)) {
                props.put("vigie." + k.replace("tls-", "tls.") + (k.equals("tls-authority") ? "" : "-file"),
                        a.get(k));
            }
        }
        AgentSettings settings = AgentSettings.from(props, Map.of());
        if (!settings.problems().isEmpty()) {
            throw new IllegalArgumentException("bad settings: " + settings.problems());
        }

        String[] appIds = new String[apps];
        for (int k = 0; k < apps; k++) {
            appIds[k] = String.format(Locale.ROOT, "load-app-%05d", k);
        }
        String[] apiNames = new String[apis];
        for (int k = 0; k < apis; k++) {
            apiNames[k] = String.format(Locale.ROOT, "LoadAPI%03d", k);
        }

        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    if (line.trim().equals("stop")) {
                        break;
                    }
                }
            } catch (java.io.IOException e) {
                // closed: stop as well
            }
            stop.set(true);
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        try (VigieAgent agent = VigieAgent.builder(settings).build()) {
            long t0 = System.nanoTime();
            long end = t0 + seconds * 1_000_000_000L;
            Producer[] producers = new Producer[threads];
            for (int k = 0; k < threads; k++) {
                producers[k] = new Producer(k, threads, agent, rate / threads, t0, appIds, apiNames, probe, stop);
                producers[k].start();
            }
            while (!stop.get() && System.nanoTime() < end) {
                LockSupport.parkNanos(reportMs * 1_000_000L);
                out.println(line(agent, producers, t0, false, probe));
            }
            stop.set(true);
            for (Producer p : producers) {
                p.join();
            }
            // every offered event ends acknowledged or counted dropped: wait for it (bounded)
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline) {
                boolean settled = true;
                for (int k = 0; k < agent.targetCount(); k++) {
                    Counters.Snapshot c = agent.targetCounters(k);
                    settled &= c.queueDepth == 0 && c.acked + c.dropped() == c.offered;
                }
                if (settled) {
                    break;
                }
                LockSupport.parkNanos(20_000_000L);
            }
            out.println(line(agent, producers, t0, true, probe));
        }
    }

    private static String line(VigieAgent agent, Producer[] producers, long t0, boolean fin, String[] probe) {
        Counters.Snapshot c = agent.counters();
        long scheduled = 0;
        long[] hist = new long[BUCKETS];
        long max = 0;
        for (Producer p : producers) {
            scheduled += p.done;
            max = Math.max(max, p.maxNanos);
            for (int b = 0; b < BUCKETS; b++) {
                hist[b] += p.hist[b];
            }
        }
        Rule r = agent.check(probe[0], probe[1], probe[2]);
        StringBuilder sb = new StringBuilder(512);
        sb.append("{\"t_ms\":").append((System.nanoTime() - t0) / 1_000_000)
                .append(",\"final\":").append(fin)
                .append(",\"offered\":").append(c.offered)
                .append(",\"sent\":").append(c.sent)
                .append(",\"acked\":").append(c.acked)
                .append(",\"dropped\":").append(c.dropped())
                .append(",\"dropped_queue_full\":").append(c.droppedQueueFull)
                .append(",\"dropped_disconnected\":").append(c.droppedDisconnected)
                .append(",\"dropped_send_failed\":").append(c.droppedSendFailed)
                .append(",\"dropped_other\":").append(c.droppedOther)
                .append(",\"reconnects\":").append(c.reconnects)
                .append(",\"stream_errors\":").append(c.streamErrors)
                .append(",\"queue_depth\":").append(c.queueDepth)
                .append(",\"state\":\"").append(agent.streamState()).append('"')
                .append(",\"directives\":").append(agent.activeDirectives())
                .append(",\"directive_version\":").append(agent.directives().version())
                .append(",\"probe_rule\":").append(r == null ? "null" : "\"" + r.id() + "\"")
                .append(",\"requests\":").append(scheduled)
                .append(",\"path_max_ns\":").append(max)
                .append(",\"path_log2_ns\":[");
        for (int b = 0; b < BUCKETS; b++) {
            sb.append(b == 0 ? "" : ",").append(hist[b]);
        }
        sb.append("],\"targets\":[");
        for (int k = 0; k < agent.targetCount(); k++) {
            Counters.Snapshot t = agent.targetCounters(k);
            sb.append(k == 0 ? "" : ",").append("{\"name\":\"").append(agent.targetName(k))
                    .append("\",\"state\":\"").append(agent.targetState(k))
                    .append("\",\"acked\":").append(t.acked)
                    .append(",\"dropped\":").append(t.dropped())
                    .append(",\"reconnects\":").append(t.reconnects).append('}');
        }
        return sb.append("]}").toString();
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int k = 0; k < args.length; k++) {
            if (!args[k].startsWith("--") || k + 1 >= args.length) {
                throw new IllegalArgumentException("expected --name value, got " + args[k]);
            }
            m.put(args[k].substring(2), args[++k]);
        }
        return m;
    }

    /**
     * One request thread: at its share of the rate, it does what the WSO2 adapter does for a
     * request (capture into the thread's record, offer, directive check) and times it.
     */
    static final class Producer extends Thread {
        final long[] hist = new long[BUCKETS];
        volatile long maxNanos;
        volatile long done;
        private final VigieAgent agent;
        private final double perSecond;
        private final long t0;
        private final String[] apps;
        private final String[] apis;
        private final String[] probe;
        private final AtomicBoolean stop;
        private final int index;
        private final int stride;

        Producer(int index, int stride, VigieAgent agent, double perSecond, long t0, String[] apps, String[] apis,
                String[] probe, AtomicBoolean stop) {
            super("request-" + index);
            setDaemon(true);
            this.index = index;
            this.stride = stride;
            this.agent = agent;
            this.perSecond = perSecond;
            this.t0 = t0;
            this.apps = apps;
            this.apis = apis;
            this.probe = probe;
            this.stop = stop;
        }

        @Override
        public void run() {
            long n = 0;
            long seq = index;
            while (!stop.get()) {
                long now = System.nanoTime();
                long due = (long) ((now - t0) / 1e9 * perSecond);
                if (n >= due) {
                    LockSupport.parkNanos(200_000L);
                    continue;
                }
                for (; n < due && !stop.get(); n++, seq += stride) {
                    int app = (int) (seq % apps.length);
                    int api = (int) ((seq / 7) % apis.length);
                    long wallUs = System.currentTimeMillis() * 1000;
                    long a = System.nanoTime();
                    RequestRecord r = agent.record();
                    r.apiName(apis[api]).apiVersion("v1").apiContext("/load/v1")
                            .resourceTemplate((seq & 1) == 0 ? "/items" : "/items/{id}")
                            .httpMethod(HttpMethods.of((seq & 3) == 0 ? "POST" : "GET"))
                            .applicationId(apps[app]).applicationName(apps[app]).applicationOwner("load")
                            .subscriptionTier("Gold").keyType(KeyTypes.of("PRODUCTION"))
                            .httpStatus(seq % 50 == 0 ? 503 : 200).eventTimeUs(wallUs)
                            .latencyUs(2_000 + (seq % 97) * 10).backendLatencyUs(1_500).responseBytes(1024);
                    agent.offer(r);
                    agent.check(apps[app], apis[api], "v1");
                    long took = System.nanoTime() - a;
                    hist[Math.min(BUCKETS - 1, 63 - Long.numberOfLeadingZeros(Math.max(1, took)))]++;
                    if (took > maxNanos) {
                        maxNanos = took;
                    }
                    done = n + 1;
                }
                if (probe.length == 3 && index == 0) {
                    agent.check(probe[0], probe[1], probe[2]); // counted as a directive hit when one applies
                }
            }
        }
    }
}
