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

    int getQueueDepth();

    int getQueueCapacity();

    /** CONNECTED, CONNECTING, DISCONNECTED or CLOSED. */
    String getStreamState();

    int getActiveDirectives();

    /** One line per directive: {@code id shadow=N enforced=N passed=N}. */
    String[] getDirectiveHits();

    /** Directive upserts rejected since the start (malformed or outside the supported ranges). */
    long getDirectivesRejected();

    /** The upserts currently rejected, one line each: {@code id update=N reason}. */
    String[] getRejectedDirectives();
}
