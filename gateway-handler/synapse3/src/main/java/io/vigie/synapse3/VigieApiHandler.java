package io.vigie.synapse3;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Clock;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.synapse.ApiNaming;
import io.vigie.synapse.Consumers;
import io.vigie.synapse.SynapseCapture;
import io.vigie.synapse.SynapseRefusal;
import org.apache.synapse.MessageContext;
import org.apache.synapse.rest.Handler;

/**
 * vigie's entry class for Apache Synapse 3 (which has no global handlers and no WSO2 API
 * Manager properties): a REST API handler, {@code <handlers><handler
 * class="io.vigie.synapse3.VigieApiHandler"/></handlers>} in an {@code <api>}. Same core as the
 * WSO2 adapter and the same {@link SynapseCapture}: checks the directive table on the request
 * (scope: API name), answers refusals with the same {@link SynapseRefusal} (WSO2 4.x's body,
 * status and headers), captures the request on the response. Catches what the WSO2 adapter
 * catches ({@link SynapseCapture#failed}): nothing escapes into mediation.
 */
public class VigieApiHandler implements Handler {
    /** {@code null} when vigie is disabled: every method then does nothing. */
    private final SynapseCapture<MessageContext> capture;
    private final SynapseRefusal<MessageContext> refusal;

    /** The constructor Synapse calls. */
    public VigieApiHandler() {
        VigieAgent agent = Shared.agent();
        this.capture = agent == null ? null
                : new SynapseCapture<>(agent, Clock.SYSTEM, Synapse3Access.INSTANCE, Consumers.none(),
                        ApiNaming.APACHE_SYNAPSE);
        // Apache Synapse runs no API handler on a sendBack: the refusal captures the request itself
        this.refusal = capture == null ? null : new SynapseRefusal<>(capture, true);
    }

    @Override
    public boolean handleRequest(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.requestStarted(ctx);
            Rule refusing = capture.check(ctx);
            if (refusing != null) {
                return !refusal.refuse(ctx, refusing);
            }
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    @Override
    public boolean handleResponse(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.backendEnded(ctx); // the backend's status, before the out-sequence runs
            capture.capture(ctx);
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    /** One agent per JVM, configured like the WSO2 adapter (system properties, env, file). */
    static final class Shared {
        private static VigieAgent agent;
        private static boolean started;

        private Shared() {}

        static synchronized VigieAgent agent() {
            if (!started) {
                started = true;
                AgentSettings s = AgentSettings.fromEnvironment();
                agent = s.enabled ? VigieAgent.builder(s).build() : null;
            }
            return agent;
        }

        static synchronized void close() {
            if (agent != null) {
                agent.close();
                agent = null;
            }
            started = false;
        }
    }
}
