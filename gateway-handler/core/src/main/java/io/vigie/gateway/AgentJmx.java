package io.vigie.gateway;

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
 * taken from the agent at each read (its totals over every sidecar target, and one line per
 * target in {@code Targets}). A failed
 * registration is logged, never fatal (the same figures reach the sidecar in the stream reports).
 */
final class AgentJmx implements VigieAgentMXBean {
    private static final Logger LOG = Logger.getLogger(AgentJmx.class.getName());

    private final VigieAgent agent;
    private ObjectName name;

    AgentJmx(VigieAgent agent) {
        this.agent = agent;
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
        return agent.counters().offered;
    }

    @Override
    public long getSent() {
        return agent.counters().sent;
    }

    @Override
    public long getAcked() {
        return agent.counters().acked;
    }

    @Override
    public long getDroppedQueueFull() {
        return agent.counters().droppedQueueFull;
    }

    @Override
    public long getDroppedDisconnected() {
        return agent.counters().droppedDisconnected;
    }

    @Override
    public long getDroppedSendFailed() {
        return agent.counters().droppedSendFailed;
    }

    @Override
    public long getDroppedOther() {
        return agent.counters().droppedOther;
    }

    @Override
    public long getReconnects() {
        return agent.counters().reconnects;
    }

    @Override
    public long getBatches() {
        return agent.counters().batches;
    }

    @Override
    public long getAdapterErrors() {
        return agent.counters().adapterErrors;
    }

    @Override
    public long getUnmatchedRequests() {
        return agent.counters().unmatched;
    }

    @Override
    public String[] getUnmatchedPrefixes() {
        List<io.vigie.wire.v1.UnmatchedPrefix> prefixes = agent.unmatchedPrefixes();
        String[] out = new String[prefixes.size()];
        for (int k = 0; k < out.length; k++) {
            out[k] = prefixes.get(k).getPrefix() + "=" + prefixes.get(k).getRequests();
        }
        return out;
    }

    @Override
    public int getQueueDepth() {
        return agent.queueDepth();
    }

    @Override
    public int getQueueCapacity() {
        return agent.queueCapacity();
    }

    @Override
    public String getStreamState() {
        return agent.streamState();
    }

    @Override
    public String[] getTargets() {
        String[] out = new String[agent.targetCount()];
        for (int k = 0; k < out.length; k++) {
            Counters.Snapshot c = agent.targetCounters(k);
            out[k] = agent.targetName(k) + " state=" + agent.targetState(k) + " sent=" + c.sent + " acked="
                    + c.acked + " dropped_queue_full=" + c.droppedQueueFull + " dropped_disconnected="
                    + c.droppedDisconnected + " dropped_send_failed=" + c.droppedSendFailed + " dropped_other="
                    + c.droppedOther + " reconnects=" + c.reconnects + " queue_depth=" + c.queueDepth;
        }
        return out;
    }

    @Override
    public int getActiveDirectives() {
        return agent.activeDirectives();
    }

    @Override
    public String[] getDirectiveHits() {
        List<DirectiveHits> hits = agent.directives().hits();
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
        return agent.counters().directivesRejected;
    }

    @Override
    public String[] getRejectedDirectives() {
        List<RejectedDirective> rejected = agent.directives().rejections();
        String[] out = new String[rejected.size()];
        for (int k = 0; k < out.length; k++) {
            RejectedDirective r = rejected.get(k);
            out[k] = r.getDirectiveId() + " update=" + r.getUpdateVersion() + " " + r.getReason();
        }
        return out;
    }
}
