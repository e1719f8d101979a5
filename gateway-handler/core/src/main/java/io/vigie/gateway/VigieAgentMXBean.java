package io.vigie.gateway;

/**
 * What a gateway operator sees in JConsole/VisualVM/Jolokia under
 * {@code io.vigie:type=GatewayHandler,gateway=<id>} (JMX is WSO2's convention for runtime figures).
 */
public interface VigieAgentMXBean {
    long getOffered();

    long getSent();

    long getAcked();

    long getDroppedQueueFull();

    long getDroppedDisconnected();

    long getDroppedSendFailed();

    long getDroppedOther();

    long getReconnects();

    long getBatches();

    long getAdapterErrors();

    /** Requests answered that belonged to no API at all (not recorded as events). */
    long getUnmatchedRequests();

    /** The same requests by first path segment, one line each: {@code /prefix=N} ({@code *=N} for the rest). */
    String[] getUnmatchedPrefixes();

    int getQueueDepth();

    int getQueueCapacity();

    /** CONNECTED, CONNECTING, DISCONNECTED or CLOSED (with several sidecars, the least advanced). */
    String getStreamState();

    /**
     * One line per sidecar target: {@code address state=.. sent=N acked=N dropped_queue_full=N
     * dropped_disconnected=N dropped_send_failed=N dropped_other=N reconnects=N queue_depth=N}
     * (what that sidecar's {@code GatewayReport} says). The other counters are totals over targets.
     */
    String[] getTargets();

    int getActiveDirectives();

    /** One line per directive: {@code id shadow=N enforced=N passed=N}. */
    String[] getDirectiveHits();

    /** Directive upserts rejected since the start (malformed or outside the supported ranges). */
    long getDirectivesRejected();

    /** The upserts currently rejected, one line each: {@code id update=N reason}. */
    String[] getRejectedDirectives();
}
