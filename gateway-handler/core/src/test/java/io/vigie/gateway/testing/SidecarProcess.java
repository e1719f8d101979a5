package io.vigie.gateway.testing;

import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.vigie.wire.v1.AdminGrpc;
import io.vigie.wire.v1.Status;
import io.vigie.wire.v1.StatusRequest;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * A real {@code vigie serve} process on loopback ports, and an authenticated Admin client.
 * Started from the CLI path given as the {@code vigie.cli} system property ({@code make test}
 * passes it).
 */
public final class SidecarProcess implements AutoCloseable {
    public final int telemetryPort;
    public final int adminPort;
    public final Path stateDir;
    private final String cli;
    private Process process;
    private ManagedChannel adminChannel;
    private AdminGrpc.AdminBlockingStub admin;
    /** Extra environment of the process (e.g. {@code VIGIE_*} settings). */
    private final Map<String, String> env = new HashMap<>();

    private SidecarProcess(String cli, Path stateDir, int telemetryPort, int adminPort) {
        this.cli = cli;
        this.stateDir = stateDir;
        this.telemetryPort = telemetryPort;
        this.adminPort = adminPort;
    }

    /** The CLI path, or {@code null} when the tests run outside {@code make test}. */
    public static String cli() {
        String p = System.getProperty("vigie.cli", "");
        return p.isEmpty() ? null : p;
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    public static SidecarProcess start(String cli, Path stateDir) throws Exception {
        return start(cli, stateDir, Map.of());
    }

    /** As above, with these environment variables (e.g. {@code VIGIE_*} settings). */
    public static SidecarProcess start(String cli, Path stateDir, Map<String, String> env) throws Exception {
        SidecarProcess p = new SidecarProcess(cli, stateDir, freePort(), freePort());
        p.env.putAll(env);
        p.startProcess();
        return p;
    }

    public String telemetryAddress() {
        return "127.0.0.1:" + telemetryPort;
    }

    /** (Re)starts the process on the same ports and state directory; waits until it answers. */
    public void startProcess() throws Exception {
        Files.createDirectories(stateDir);
        List<String> cmd = new ArrayList<>(List.of(cli, "serve", "--listen", telemetryAddress(), "--admin-listen",
                "127.0.0.1:" + adminPort, "--state-dir", stateDir.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(stateDir.resolve("serve.log").toFile()));
        pb.environment().put("PYTHONUNBUFFERED", "1");
        pb.environment().putAll(env);
        process = pb.start();
        waitFor("the sidecar to answer on its admin port", 180, () -> {
            if (!process.isAlive()) {
                throw new IllegalStateException("vigie serve exited with " + process.exitValue() + ":\n" + log());
            }
            try {
                status();
                return true;
            } catch (RuntimeException e) {
                return false;
            }
        });
    }

    /** SIGKILL: the sidecar dies mid-stream without a word. */
    public void kill() throws InterruptedException {
        if (process != null) {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
        closeAdmin();
    }

    public Status status() {
        return admin().getStatus(StatusRequest.getDefaultInstance());
    }

    public synchronized AdminGrpc.AdminBlockingStub admin() {
        if (admin == null) {
            Path tokenFile = stateDir.resolve("admin.token");
            String token;
            try {
                token = Files.readString(tokenFile, StandardCharsets.UTF_8).trim();
            } catch (IOException e) {
                throw new IllegalStateException("no admin token yet", e);
            }
            Metadata md = new Metadata();
            md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
            adminChannel = NettyChannelBuilder.forAddress("127.0.0.1", adminPort).usePlaintext().build();
            admin = AdminGrpc.newBlockingStub(adminChannel)
                    .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));
        }
        return admin.withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    public String log() {
        try {
            return Files.readString(stateDir.resolve("serve.log"), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    private synchronized void closeAdmin() {
        if (adminChannel != null) {
            adminChannel.shutdownNow();
            adminChannel = null;
            admin = null;
        }
    }

    @Override
    public void close() {
        closeAdmin();
        if (process != null && process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Polls {@code condition} (bounded): for real processes only, never to move time. */
    public static void waitFor(String what, int seconds, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + seconds + " s waiting for " + what);
            }
            Thread.sleep(25);
        }
    }
}
