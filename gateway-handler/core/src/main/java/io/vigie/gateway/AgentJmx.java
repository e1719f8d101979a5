package io.vigie.gateway;

import io.vigie.gateway.directive.DirectiveTable;
import io.vigie.gateway.queue.EventRing;
import io.vigie.wire.v1.DirectiveHits;
import io.vigie.wire.v1.RejectedDirective;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * The agent's JMX view, {@code io.vigie:type=GatewayHandler,gateway=<id>}: read-only figures
 * taken from the counters, the queue, the sender and the directive table at each read. A failed
 * registration is logged, never fatal (the same figures reach the sidecar in the stream reports).
 */
final class AgentJmx implements VigieAgentMXBean {
    private static final Logger LOG = Logger.getLogger(AgentJmx.class.getName());

    private final Counters counters;
    private final EventRing ring;
    private final StreamSender sender;
    private final DirectiveTable directives;
    private ObjectName name;

    AgentJmx(Counters counters, EventRing ring, StreamSender sender, DirectiveTable directives) {
        this.counters = counters;
        this.ring = ring;
        this.sender = sender;
        this.directives = directives;
    }

    /** Registers this view in the platform MBean server (replacing one of the same name). */
    void register(String gatewayId) {
        try {
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            ObjectName n = new ObjectName("io.vigie:type=GatewayHandler,gateway=" + ObjectName.quote(gatewayId));
            if (server.isRegistered(n)) {
                server.unregisterMBean(n);
            }
            server.registerMBean(this, n);
            name = n;
        } catch (Exception | LinkageError e) {
            LOG.log(Level.WARNING, "vigie: JMX registration failed; counters stay in the stream reports", e);
        }
    }

    void unregister() {
        ObjectName n = name;
        name = null;
        if (n == null) {
            return;
        }
        try {
            ManagementFactory.getPlatformMBeanServer().unregisterMBean(n);
        } catch (Exception | LinkageError e) {
            LOG.log(Level.FINE, "vigie: JMX unregistration failed", e);
        }
    }

    @Override
    public long getOffered() {
        return counters.offered.sum();
    }

    @Override
    public long getSent() {
        return counters.sent.sum();
    }

    @Override
    public long getAcked() {
        return counters.acked.sum();
    }

    @Override
    public long getDroppedQueueFull() {
        return counters.droppedQueueFull.sum();
    }

    @Override
    public long getDroppedDisconnected() {
        return counters.droppedDisconnected.sum();
    }

    @Override
    public long getDroppedSendFailed() {
        return counters.droppedSendFailed.sum();
    }

    @Override
    public long getDroppedOther() {
        return counters.droppedOther.sum();
    }

    @Override
    public long getReconnects() {
        return counters.reconnects.sum();
    }

    @Override
    public long getBatches() {
        return counters.batches.sum();
    }

    @Override
    public long getAdapterErrors() {
        return counters.adapterErrors.sum();
    }

    @Override
    public int getQueueDepth() {
        return ring.size();
    }

    @Override
    public int getQueueCapacity() {
        return ring.capacity();
    }

    @Override
    public String getStreamState() {
        return sender.state().name();
    }

    @Override
    public int getActiveDirectives() {
        return directives.activeCount();
    }

    @Override
    public String[] getDirectiveHits() {
        List<DirectiveHits> hits = directives.hits();
        String[] out = new String[hits.size()];
        for (int k = 0; k < out.length; k++) {
            DirectiveHits h = hits.get(k);
            out[k] = h.getDirectiveId() + " shadow=" + h.getShadowHits() + " enforced=" + h.getEnforcedHits()
                    + " passed=" + h.getPassed();
        }
        return out;
    }

    @Override
    public long getDirectivesRejected() {
        return counters.directivesRejected.sum();
    }

    @Override
    public String[] getRejectedDirectives() {
        List<RejectedDirective> rejected = directives.rejections();
        String[] out = new String[rejected.size()];
        for (int k = 0; k < out.length; k++) {
            RejectedDirective r = rejected.get(k);
            out[k] = r.getDirectiveId() + " update=" + r.getUpdateVersion() + " " + r.getReason();
        }
        return out;
    }
}
