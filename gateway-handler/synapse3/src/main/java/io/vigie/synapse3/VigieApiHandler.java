package io.vigie.synapse3;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Clock;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.synapse.ApiNaming;
import io.vigie.synapse.Consumers;
import io.vigie.synapse.SynapseCapture;
import org.apache.axis2.AxisFault;
import org.apache.synapse.MessageContext;
import org.apache.axiom.om.OMAbstractFactory;
import org.apache.axiom.om.OMElement;
import org.apache.axiom.om.OMFactory;
import org.apache.axiom.soap.SOAPBody;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;
import org.apache.synapse.rest.Handler;

/**
 * vigie's entry class for Apache Synapse 3 (which has no global handlers and no WSO2 API
 * Manager properties): a REST API handler, {@code <handlers><handler
 * class="io.vigie.synapse3.VigieApiHandler"/></handlers>} in an {@code <api>}. Same core as the
 * WSO2 adapter and the same {@link SynapseCapture}: checks the directive table on the request
 * (scope: API name), captures the request on the response. Catches what the WSO2 adapter
 * catches ({@link SynapseCapture#failed}): nothing escapes into mediation.
 */
public class VigieApiHandler implements Handler {
    /** {@code null} when vigie is disabled: every method then does nothing. */
    private final SynapseCapture<MessageContext> capture;

    /** The constructor Synapse calls. */
    public VigieApiHandler() {
        VigieAgent agent = Shared.agent();
        this.capture = agent == null ? null
                : new SynapseCapture<>(agent, Clock.SYSTEM, Synapse3Access.INSTANCE, Consumers.none(),
                        ApiNaming.APACHE_SYNAPSE);
    }

    @Override
    public boolean handleRequest(MessageContext ctx) {
        if (capture == null) {
            return true;
        }
        try {
            capture.requestStarted(ctx);
            Rule refusal = capture.check(ctx);
            if (refusal != null && ctx instanceof Axis2MessageContext) {
                org.apache.axis2.context.MessageContext axis2 = ((Axis2MessageContext) ctx).getAxis2MessageContext();
                setFaultBody(axis2, refusal);
                axis2.setProperty("messageType", "application/xml");
                axis2.setProperty("ContentType", "application/xml");
                axis2.setProperty("HTTP_SC", 429);
                axis2.removeProperty("NO_ENTITY_BODY"); // a GET has none; the refusal has one
                // write the new envelope instead of relaying the request's unread pipe
                axis2.setProperty("message.builder.invoked", Boolean.TRUE);
                ctx.setProperty("ERROR_CODE", refusal.errorCode());
                ctx.setProperty("vigie.refused", Boolean.TRUE);
                capture.capture(ctx); // Apache Synapse runs no API handler on a sendBack
                Synapse3Access.INSTANCE.sendBack(ctx);
                return false;
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
            capture.capture(ctx);
        } catch (Throwable t) {
            capture.failed(t);
        }
        return true;
    }

    /**
     * WSO2's fault shape as XML ({@code <fault><code/><message/><description/></fault>}): Apache
     * Synapse 3 has no JSON payload API (WSO2's JsonUtil is a fork addition).
     */
    private static void setFaultBody(org.apache.axis2.context.MessageContext axis2, Rule rule) throws AxisFault {
        OMFactory f = OMAbstractFactory.getOMFactory();
        OMElement fault = f.createOMElement("fault", null);
        f.createOMElement("code", null, fault).setText(Integer.toString(rule.errorCode()));
        f.createOMElement("message", null, fault).setText(rule.block() ? "Message blocked" : "Message throttled out");
        f.createOMElement("description", null, fault).setText(rule.reason());
        SOAPBody body = axis2.getEnvelope().getBody();
        while (body.getFirstElement() != null) {
            body.getFirstElement().detach();
        }
        body.addChild(fault);
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
