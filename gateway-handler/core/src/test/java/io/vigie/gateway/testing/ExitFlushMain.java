package io.vigie.gateway.testing;

import io.vigie.gateway.VigieAgent;

/**
 * A child JVM for {@code ShutdownHookTest}: connects an agent to the sidecar given as
 * {@code args[0]}, offers {@code args[1]} events and returns from {@code main} (a normal JVM
 * exit) without closing the agent. {@code args[2]} is {@code hook} or {@code nohook}. The flush
 * interval and batch size are large, so only a flush at exit can deliver the events.
 */
public final class ExitFlushMain {
    private ExitFlushMain() {}

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[1]);
        VigieAgent agent = VigieAgent.builder().sidecarAddress(args[0]).gatewayId("exit-flush")
                .flushIntervalMs(60_000).batchMaxEvents(1 << 20).queueCapacity(1 << 16)
                .closeOnJvmExit("hook".equals(args[2])).shutdownFlushMs(2_000).build();
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!"CONNECTED".equals(agent.streamState())) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no stream to " + args[0]);
            }
            Thread.sleep(10); // a child process waiting for its connection, not a test moving time
        }
        for (int k = 0; k < n; k++) {
            agent.offer(agent.record().apiName("Orders").applicationId("app-" + (k % 7)).httpStatus(200));
        }
        System.out.println("offered " + n);
    }
}
