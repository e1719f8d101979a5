package io.vigie.bench;

import io.vigie.gateway.Counters;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.testing.SidecarProcess;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.util.Statistics;

/**
 * {@code make bench-java}: the JMH request-path benchmark (vigie vs the naive unary call, same
 * run), the encoder's throughput, and the events/s the sender sustains into a real
 * {@code vigie serve}. Writes {@code benchmarks/results/handler-*.json} in the format of
 * {@code benchmarks/_harness.py} and prints the ratios.
 *
 * <p>System properties: {@code vigie.results} (output folder), {@code vigie.cli} (the sidecar;
 * without it the real-sidecar figure is skipped), {@code vigie.bench.quick=true} (shorter runs).
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        boolean quick = Boolean.getBoolean("vigie.bench.quick");
        Path out = Paths.get(System.getProperty("vigie.results", "benchmarks/results"));
        Files.createDirectories(out);

        Options path = new OptionsBuilder()
                .include(RequestPathBenchmark.class.getName())
                .forks(1).threads(1)
                .warmupIterations(quick ? 1 : 3).warmupTime(TimeValue.seconds(quick ? 1 : 2))
                .measurementIterations(quick ? 2 : 3).measurementTime(TimeValue.seconds(quick ? 1 : 3))
                .jvmArgs("-Xms512m", "-Xmx512m", "-XX:+UseParallelGC")
                .build();
        Map<String, Statistics> stats = new LinkedHashMap<>();
        for (RunResult r : new Runner(path).run()) {
            String name = r.getParams().getBenchmark();
            stats.put(name.substring(name.lastIndexOf('.') + 1), r.getPrimaryResult().getStatistics());
        }
        Statistics v = stats.get("vigie");
        Statistics n = stats.get("naive");

        Options enc = new OptionsBuilder()
                .include(EncoderBenchmark.class.getName())
                .forks(1).threads(1)
                .warmupIterations(quick ? 1 : 2).warmupTime(TimeValue.seconds(1))
                .measurementIterations(quick ? 2 : 3).measurementTime(TimeValue.seconds(quick ? 1 : 2))
                .jvmArgs("-Xms512m", "-Xmx512m")
                .build();
        Collection<RunResult> encResults = new Runner(enc).run();
        double encodePerSecond = encResults.iterator().next().getPrimaryResult().getScore();

        List<String> path1 = new ArrayList<>();
        double p50v = v.getPercentile(50);
        double p99v = v.getPercentile(99);
        double p50n = n.getPercentile(50);
        double p99n = n.getPercentile(99);
        path1.add(result("request path p50 (capture + offer + directive lookup)", "ns", p50v, p50n,
                "synchronous unary gRPC call per request to a local server", null, false,
                "JMH SampleTime, 1 thread; 2,001 directives in the table",
                Map.of("vigie_p90_ns", v.getPercentile(90), "vigie_p999_ns", v.getPercentile(99.9),
                        "naive_p90_ns", n.getPercentile(90), "naive_p999_ns", n.getPercentile(99.9),
                        "vigie_samples", (double) v.getN(), "naive_samples", (double) n.getN())));
        path1.add(result("request path p99 (capture + offer + directive lookup)", "ns", p99v, p99n,
                "synchronous unary gRPC call per request to a local server", 2_000.0, false,
                "target: 2 us p99, under 0.2 % of the ~1.1 ms of CPU a WSO2 gateway spends per request",
                Map.of()));
        write(out.resolve("handler-request-path.json"), "handler-request-path", path1);

        List<String> sender = new ArrayList<>();
        double naiveEventsPerSecond = 1e9 / n.getMean();
        sender.add(result("sender encode + serialize (no network)", "events/s", encodePerSecond, null, "", null,
                true, "sender thread's own cost per event, batches of 4,096, warm dictionary", Map.of()));
        String cli = System.getProperty("vigie.cli", "");
        double intoSidecar = 0;
        if (!cli.isEmpty()) {
            Map<String, Double> s = senderIntoRealSidecar(cli, quick ? 4 : 10);
            intoSidecar = s.get("events_per_s");
            sender.add(result("sender into a real vigie serve", "events/s", intoSidecar, naiveEventsPerSecond,
                    "one unary gRPC call per event, 1 thread (from the request-path run)", null, true,
                    "1 producer thread offering as fast as the queue takes; events acknowledged by the sidecar "
                            + "per second of wall time; 2 cores shared by gateway, sidecar and producer",
                    s));
        }
        write(out.resolve("handler-sender.json"), "handler-sender", sender);

        System.out.println();
        System.out.println("vigie handler benchmarks (" + out + ")");
        System.out.printf(Locale.ROOT, "  request path p50   vigie %10.0f ns   naive %10.0f ns   ratio %7.1fx%n",
                p50v, p50n, p50n / p50v);
        System.out.printf(Locale.ROOT, "  request path p99   vigie %10.0f ns   naive %10.0f ns   ratio %7.1fx   "
                + "target <= 2000 ns: %s%n", p99v, p99n, p99n / p99v, p99v <= 2_000 ? "met" : "NOT MET");
        System.out.printf(Locale.ROOT, "  encoder            %,14.0f events/s%n", encodePerSecond);
        if (intoSidecar > 0) {
            System.out.printf(Locale.ROOT, "  into real sidecar  %,14.0f events/s   naive %,10.0f events/s   ratio %7.1fx%n",
                    intoSidecar, naiveEventsPerSecond, intoSidecar / naiveEventsPerSecond);
        } else {
            System.out.println("  into real sidecar  skipped (no -Dvigie.cli)");
        }
    }

    /** Offers as fast as the queue takes for {@code seconds}, and counts what the sidecar acknowledged. */
    static Map<String, Double> senderIntoRealSidecar(String cli, int seconds) throws Exception {
        Path dir = Files.createTempDirectory("vigie-bench-");
        try (SidecarProcess sc = SidecarProcess.start(cli, dir.resolve("state"));
                VigieAgent agent = VigieAgent.builder().sidecarAddress(sc.telemetryAddress()).gatewayId("bench-sender")
                        .channel("main").queueCapacity(1 << 18).batchMaxEvents(8_192).build()) {
            SidecarProcess.waitFor("the stream", 60, () -> "CONNECTED".equals(agent.streamState()));
            AtomicBoolean stop = new AtomicBoolean();
            GatewayContext[] ctx = new GatewayContext[256];
            for (int k = 0; k < ctx.length; k++) {
                ctx[k] = new GatewayContext(k);
            }
            int capacity = agent.queueCapacity();
            Thread producer = new Thread(() -> {
                int k = 0;
                while (!stop.get()) {
                    if (agent.queueDepth() > capacity / 2) {
                        Thread.onSpinWait(); // measure what is sustained, not how fast drops are counted
                        continue;
                    }
                    var r = agent.record();
                    ctx[k++ & 255].capture(r, System.currentTimeMillis() * 1000);
                    r.eventTimeUs(System.currentTimeMillis() * 1000);
                    agent.offer(r);
                }
            }, "bench-producer");
            producer.start();
            Thread.sleep(2_000); // warm up (JIT on both sides)
            Counters.Snapshot a = agent.counters();
            long t0 = System.nanoTime();
            Thread.sleep(seconds * 1_000L);
            Counters.Snapshot b = agent.counters();
            long t1 = System.nanoTime();
            stop.set(true);
            producer.join();
            double elapsed = (t1 - t0) / 1e9;
            Map<String, Double> m = new LinkedHashMap<>();
            m.put("events_per_s", (b.acked - a.acked) / elapsed);
            m.put("sent_per_s", (b.sent - a.sent) / elapsed);
            m.put("batches_per_s", (b.batches - a.batches) / elapsed);
            m.put("dropped", (double) b.dropped());
            m.put("seconds", elapsed);
            m.put("sidecar_ingest_rate", sc.status().getIngestRate());
            return m;
        }
    }

    private static String result(String name, String unit, double vigie, Double naive, String naiveLabel,
            Double target, boolean higherIsBetter, String notes, Map<String, Double> extra) {
        Double ratio = naive == null || vigie == 0 ? null : higherIsBetter ? vigie / naive : naive / vigie;
        Boolean meets = target == null ? null : higherIsBetter ? vigie >= target : vigie <= target;
        StringBuilder sb = new StringBuilder("    {");
        sb.append("\"name\": ").append(q(name)).append(", \"unit\": ").append(q(unit))
                .append(", \"vigie\": ").append(num(vigie)).append(", \"naive\": ").append(naive == null ? "null" : num(naive))
                .append(", \"naive_label\": ").append(q(naiveLabel))
                .append(", \"target\": ").append(target == null ? "null" : num(target))
                .append(", \"higher_is_better\": ").append(higherIsBetter)
                .append(", \"notes\": ").append(q(notes)).append(", \"extra\": {");
        boolean first = true;
        for (Map.Entry<String, Double> e : new java.util.TreeMap<>(extra).entrySet()) {
            sb.append(first ? "" : ", ").append(q(e.getKey())).append(": ").append(num(e.getValue()));
            first = false;
        }
        sb.append("}, \"ratio\": ").append(ratio == null ? "null" : num(ratio))
                .append(", \"meets_target\": ").append(meets == null ? "null" : meets.toString()).append("}");
        return sb.toString();
    }

    private static void write(Path file, String group, List<String> results) throws IOException {
        String doc = "{\n  \"group\": " + q(group) + ",\n  \"at\": " + q(Instant.now().toString().replaceAll("\\.\\d+Z$", "Z"))
                + ",\n  \"machine\": {\"java\": " + q(System.getProperty("java.version")) + ", \"cpu_count\": "
                + Runtime.getRuntime().availableProcessors() + "},\n  \"results\": [\n" + String.join(",\n", results)
                + "\n  ]\n}\n";
        Files.writeString(file, doc, StandardCharsets.UTF_8);
        System.out.println("wrote " + file);
    }

    private static String num(double d) {
        return Double.isFinite(d) ? String.format(Locale.ROOT, "%.3f", d) : "null";
    }

    private static String q(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
